"""The WSGI app for ``gunicorn proxy.wsgi``, configured from ``PROXY_*`` env vars."""
from proxy.app import create_app

application = create_app()
