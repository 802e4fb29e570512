"""The keys file and the models file read again while the proxy serves: on ``SIGHUP`` (under
waitress; gunicorn's master starts its workers afresh, each reading them), when they change
(``--watch``), or through ``POST /admin/reload``.

Both are read and checked before either is used: a file that does not parse leaves the
proxy as it was, and the reason is logged and told. A key removed is refused at its next
request, a key added accepted at once; a model removed finishes its open streams before its
server stops (:mod:`proxy.fleet.build`).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Optional

from proxy.access.build import read_keys
from proxy.access.gate import Access
from proxy.access.keyring import parse_keys
from proxy.access.keysfile import new_secret, with_key, without_key
from proxy.config.build import from_settings
from proxy.config.catalog import Catalog
from proxy.config.files import tomllib
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.core.router import Router
from proxy.inspector.capture import Capture
from proxy.servers.build import load_catalog

ServeCatalog = Callable[[Callable[[], Catalog]], None]  # proxy.fleet.build.Anew.serve

logger = logging.getLogger(__name__)


class Reloader:
    """Reads the files again and serves what they say, one reload at a time."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        access: Access,
        router: Router,
        capture: Optional[Capture] = None,
        serve: Optional[ServeCatalog] = None,
    ) -> None:
        """``serve``: how to serve a models file read again (``None``: the proxy serves a
        backend it was given, and only the keys are read again)."""
        self.settings = settings
        self.runtime = runtime
        self.access = access
        self.router = router
        self.capture = capture
        self.serve = serve
        self._lock = threading.Lock()  # one reload or change at a time

    @property
    def files(self) -> list:
        """The files a reload reads."""
        files = [self.settings.access.keys]
        if self.serve is not None:
            files.append(self.settings.models.config)
        return [path for path in files if path]

    def reload(self) -> dict:
        """Read and serve both files; what is served now. A ``ValueError`` saying why a file
        cannot be used changes nothing."""
        with self._lock:
            return self._reload()

    def _reload(self) -> dict:
        keys = read_keys(self.settings, self.runtime)
        models = self.serve is not None and bool(self.settings.models.config)
        if models:
            from_settings(self.settings)  # a models file that does not parse says so here
        self.access.replace_keys(keys)
        if self.capture is not None:
            self.capture.keyed = any(key.capture for key in keys)
        if models:
            self.serve(lambda: load_catalog(self.settings, self.runtime))
        served = {
            "keys": [key.name for key in keys],
            "models": [model.id for model in self.router.models()],
        }
        logger.info("reloaded: %d keys, %d models", len(keys), len(served["models"]))
        return served

    def add_key(self, entry: dict) -> dict:
        """Write a ``[[keys]]`` table for ``entry`` into the keys file (a secret made for it
        when it has no ``key`` nor ``key_env``) and serve it; the entry as written."""
        entry = dict(entry)
        if "key" not in entry and "key_env" not in entry:
            entry["key"] = new_secret()
        with self._lock:
            self._rewrite(lambda text: with_key(text, entry))
        return entry

    def revoke_key(self, name: str) -> None:
        """Take the key ``name`` out of the keys file and refuse it from now on; a
        ``KeyError`` when the file has no such key."""
        with self._lock:
            self._rewrite(lambda text: without_key(text, name))

    def _rewrite(self, change: Callable[[str], str]) -> None:
        """Change the keys file's text, check it, write it whole, then serve it."""
        path = self.settings.access.keys
        if not path:
            raise ValueError("the proxy has no keys file to change (start it with --keys)")
        with open(path, encoding="utf-8") as handle:
            text = change(handle.read())
        try:
            parse_keys(tomllib.loads(text), path, self.runtime.environ, text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
        written = f"{path}.{os.getpid()}.new"
        with open(written, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(written, path)  # whole, for every reader
        self._reload()

    def reload_logged(self) -> None:
        """:meth:`reload`, a file that cannot be used logged (for a signal or a watch)."""
        try:
            self.reload()
        except ValueError as exc:
            logger.warning("reload refused, the configuration is kept: %s", exc)
