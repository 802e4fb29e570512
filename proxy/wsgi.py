"""The WSGI app for ``gunicorn proxy.wsgi``, configured from ``PROXY_*`` env vars."""
from proxy.app import create_app
from proxy.config import Settings
from proxy.logs import log_to_stderr

settings = Settings.from_env()
log_to_stderr(settings.log_level)
application = create_app(settings)
