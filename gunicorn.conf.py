"""gunicorn settings for ``gunicorn proxy.wsgi``: the defaults come from PROXY_* env vars."""

from proxy.config.settings import Settings
from proxy.serving.gunicorn import gunicorn_options

globals().update(gunicorn_options(Settings.from_env()))
