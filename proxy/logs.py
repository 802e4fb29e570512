"""Where the proxy's log lines go: standard error, one format, whichever way it is served."""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr(level: str) -> None:
    """Send log lines at ``level`` and above to standard error, unless the host program
    (a test, an embedding application) has set logging up already."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
