"""The way one request goes to a server of a public API, chosen once, as it comes: what
that way refuses, which of the request's fields it has no place for and which it fills
itself, where it goes, its body, and the server's answer read back, whole or streamed.

Each backend of :mod:`proxy.backends.wire.relay` has its ways (a chat translated into the
server's API, a raw prompt, a client's own body sent on verbatim to a server of its API)
and says which one a request takes (:meth:`~proxy.backends.wire.relay.Relay.way`); from
then on the relay asks the way, and nothing else, about that request. Another way of
sending is another class, chosen there, never a check in each step. Pure: a way writes
bodies and reads answers; the relay sends them.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from proxy.core.answers import Completion
from proxy.core.errors import ProxyError


class Way:
    """How one request is sent to the server, and its answer read."""

    path = ""  # where it goes
    count_path = ""  # where the server counts its prompt's tokens ("": not this way)

    def refusal(self) -> Optional[ProxyError]:
        """Why the request cannot go this way, or ``None`` (what the model's filters strip
        is left out, not refused)."""
        return None

    def unsent(self) -> Iterable[str]:
        """The names the client gave the request's fields that this way has no place for."""
        return ()

    def filled(self) -> tuple:
        """The fields of the body the proxy writes though the request gave none."""
        return ()

    def body(self, *, stream: bool) -> dict:
        """The body sent at :attr:`path`, for a whole answer or a stream."""
        raise NotImplementedError

    def whole(self, answer: object) -> Completion:
        """The server's whole answer, read."""
        raise NotImplementedError

    def chunks(self, lines: Iterable[list]) -> Iterator:
        """The server's stream, read one read's lines at a time: chunks, and whatever else
        travels with them to the client (its lines as it wrote them,
        :class:`~proxy.core.events.Passed`)."""
        raise NotImplementedError

    def count_body(self) -> dict:
        """The body of a count of the request's prompt, sent at :attr:`count_path`."""
        raise NotImplementedError

    def counted(self, answer: object) -> int:
        """The prompt's tokens the server's count tells."""
        raise NotImplementedError
