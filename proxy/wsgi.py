"""The WSGI app for ``gunicorn proxy.wsgi``, configured from ``PROXY_*`` env vars.

Model servers the proxy runs need gunicorn's hooks in ``gunicorn.conf.py`` (which gunicorn
reads from the folder it starts in): they start the one process that runs those servers for
every worker. Without them each worker would start its own, on the same ports.
"""

from proxy.app import create_app
from proxy.config.build import from_settings
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.logs import log_to_stderr

try:  # gunicorn prints its message, without a traceback, and stops
    from gunicorn.errors import AppImportError as CannotServe
except ImportError:  # another WSGI server
    CannotServe = RuntimeError


def application_from_env():
    settings = Settings.from_env()
    runtime = Runtime.from_environment()
    log_to_stderr(settings.observing.log_level)
    try:
        if not runtime.supervisor and any(spec.managed for spec in from_settings(settings).models):
            raise ValueError(
                "the model servers the proxy runs need gunicorn's hooks: start "
                "it as gunicorn -c gunicorn.conf.py proxy.wsgi (gunicorn.conf.py "
                "is in the project folder)"
            )
        return create_app(settings, runtime)
    except ValueError as exc:
        raise CannotServe(f"oai-proxy: {exc}") from None


application = application_from_env()
app = application  # granian --interface wsgi proxy.wsgi:app
