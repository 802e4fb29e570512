"""Serving the app: the ``oai-proxy`` command, gunicorn's settings and worker."""
