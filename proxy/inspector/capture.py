"""Exchanges the proxy keeps for the admin's inspector (``--capture``, or ``capture = true``
for a key): each request as its client sent it, the answer it got, and the facts of it.

Off by default. One exchange keeps at most 1 MiB of its request and of its answer each; the
rest is cut and said to be. A request never waits on the store (``sqlite_exchanges.py``, or
``redis_exchanges.py``): exchanges go to a writer thread through a bounded queue, and one
that finds the queue full is dropped and counted.

Nothing secret is kept: headers are not (keys travel there), and images and other base64
payloads are kept as their type, size and SHA-256 (:func:`scrubbed`), as are a form's files
and media answers (speech, pictures).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from typing import Callable, ContextManager, Optional

from proxy.core.errors import StoreUnavailableError
from proxy.core.outages import Outages

MAX_PART = 1024 * 1024  # bytes of one request or answer kept
QUEUED = 1000  # exchanges waiting for the writer, at most
QUEUED_BYTES = 64 * 1024 * 1024  # and their bytes, at most (as their requests and answers go)
WRITE_EVERY = 0.5  # seconds
BLOB = 512  # characters from which a base64 string is a payload, not text
DATA_URI = re.compile(r"data:([\w.+/-]*)(?:;[\w=.-]+)*;base64,(.*)", re.S)
BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}")


def scrubbed(value):
    """``value`` (JSON) with every base64 payload (a data URI, or a long base64 string such
    as Ollama's and Anthropic's images) as its type, size and SHA-256."""
    if isinstance(value, dict):
        return {name: scrubbed(item) for name, item in value.items()}
    if isinstance(value, list):
        return [scrubbed(item) for item in value]
    if isinstance(value, str) and len(value) >= BLOB:
        return _payload(value) or value
    return value


def _payload(text: str) -> Optional[str]:
    uri = DATA_URI.fullmatch(text)
    kind, data = (uri.group(1) or "application/octet-stream", uri.group(2)) if uri else ("", text)
    if not uri and not BASE64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    return told(kind or "base64", len(raw), hashlib.sha256(raw).hexdigest())


def told(kind: str, size: int, sha256: str) -> str:
    """A payload as it is kept: its type, size and SHA-256, never its bytes."""
    return f"[{kind}: {size} bytes, sha256 {sha256}]"


def binary(content_type: str) -> bool:
    """Whether an answer of ``content_type`` is media (speech, a picture), kept as a payload."""
    return content_type.startswith(("audio/", "image/", "video/", "application/octet-stream"))


def kept(data: bytes) -> tuple:
    """``(what is kept of an answer's body, whether it was cut)``: its JSON, scrubbed, when
    it is JSON, else its text; at most :data:`MAX_PART` bytes."""
    cut = len(data) > MAX_PART
    if not cut:
        try:
            return kept_json(json.loads(data))
        except ValueError:
            pass
    return data[:MAX_PART].decode("utf-8", "replace"), cut


def kept_json(value) -> tuple:
    """``(what is kept of a JSON body, whether it was cut)``: scrubbed, and past
    :data:`MAX_PART` bytes of it, the first of them as text."""
    value = scrubbed(value)
    text = json.dumps(value, ensure_ascii=False)
    if len(text.encode("utf-8")) <= MAX_PART:
        return value, False
    return text.encode("utf-8")[:MAX_PART].decode("utf-8", "ignore"), True


def gather_side(record: dict) -> dict:
    """``record`` with its model's side (a :class:`~proxy.ops.modelside.ModelSide`, under ``side``,
    taken out) read into it, the server asked for its rendering where it made the prompt: the
    upstream body scrubbed and the texts cut as a request's are."""
    side = record.pop("side", None)
    if side is None:
        return record
    facts = side.gather_facts()
    facts["upstream_body"], body_cut = (
        (None, False) if facts["upstream_body"] is None else kept_json(facts["upstream_body"])
    )
    prompt_cut = raw_cut = False
    if facts["prompt"] is not None:
        facts["prompt"], prompt_cut = cut_text(facts["prompt"])
    if facts["raw"] is not None:
        facts["raw"], raw_cut = cut_text(facts["raw"])
    return {**record, **facts, "model_side_cut": body_cut or prompt_cut or raw_cut}


def cut_text(text: str) -> tuple:
    """``(text, whether it was cut)``: at most :data:`MAX_PART` bytes of it."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_PART:
        return text, False
    return data[:MAX_PART].decode("utf-8", "ignore"), True


class Capture:
    """Which exchanges are kept, and their way to the store without ever holding a request."""

    def __init__(
        self,
        store,
        everyone: bool,
        *,
        keyed: bool = False,
        catalog: Optional[Callable[[], object]] = None,
        outages: Optional[Outages] = None,
    ) -> None:
        """``store``: a :class:`SqliteExchanges` or its Redis twin; ``everyone``: keep every
        exchange (``--capture on``), else only those of keys that ask for it (``keyed``:
        some do) and of models that do (in ``catalog()``, the models served now);
        ``outages``: told when the store fails and comes back."""
        self.store = store
        self.outages = outages or Outages("a SQLite file")
        self.everyone = everyone
        self.keyed = keyed
        self.catalog = catalog
        self.dropped = 0  # exchanges a full queue or a full store gave up
        self.on_dropped: Callable[[int], None] = lambda count: None  # metrics count them
        self.on_unwritten: Callable[[int], None] = lambda count: None  # those the store failed
        self._waiting: list = []  # records for the writer
        self._waiting_bytes = 0
        self._writer: Optional[threading.Thread] = None
        self._lock = threading.Lock()  # guards the waiting list
        self._writing = threading.Lock()  # one flush at a time: a reader's waits for the writer's

    def armed(self) -> bool:
        """Whether any exchange may be kept: each then watches its model's side."""
        return self.everyone or self.keyed or any(spec.capture for spec in self._models())

    def wanted(self, key, model: str) -> bool:
        """Whether the exchange of ``key`` (``None``: no keys) with the model counted as
        ``model`` is kept."""
        if self.everyone or (key is not None and key.capture):
            return True
        return any(spec.capture and spec.id == model for spec in self._models())

    def _models(self) -> tuple:
        return self.catalog().models if self.catalog is not None else ()

    def submit(self, record: dict, size: int = 0) -> None:
        """Keep ``record`` (of about ``size`` bytes) soon; never wait for it. Past
        :data:`QUEUED` records or :data:`QUEUED_BYTES` waiting, it is dropped."""
        with self._lock:
            full = len(self._waiting) >= QUEUED or self._waiting_bytes + size > QUEUED_BYTES
            if not full:
                self._waiting.append(record)
                self._waiting_bytes += size
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write, name="exchange-writer", daemon=True
                    )
                    self._writer.start()
        if full:
            self._drop(1)

    def flush(self) -> None:
        """Write what waits now (the writer does, every half second). On return, every
        exchange submitted before the call is in the store, even one the writer had taken."""
        with self._writing:
            with self._lock:
                records, self._waiting, self._waiting_bytes = self._waiting, [], 0
            if not records:
                return
            records = [gather_side(record) for record in records]
            try:
                with self.outages.reaching("exchanges"):
                    self._drop(self.store.add(records))
            except StoreUnavailableError:  # the inspector's loss, never the request's
                self._drop(len(records))
                self.on_unwritten(len(records))

    def reading(self) -> ContextManager[None]:
        """A ``with`` block reading the store: its failure a 503 naming it."""
        return self.outages.reaching("exchanges", reading=True)

    def _drop(self, count: int) -> None:
        if count:
            self.dropped += count
            self.on_dropped(count)

    def _write(self) -> None:
        while True:
            time.sleep(WRITE_EVERY)
            self.flush()
