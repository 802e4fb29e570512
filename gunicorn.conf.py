"""gunicorn settings for ``gunicorn proxy.wsgi``: the defaults come from PROXY_* env vars."""
from proxy.config import Settings
from proxy.serving import gunicorn_options

globals().update(gunicorn_options(Settings.from_env()))
