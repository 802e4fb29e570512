"""One HTTP GET for a web tool: connected to the address checked before
(:mod:`proxy.core.outbound`), no redirect followed (the caller checks where it leads first),
at most a bound of bytes read, and one deadline for the whole call, from its first connect
to its last byte: at the deadline every connection the call opened is shut, which ends a
read waiting on it, however a server drips its bytes.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from typing import Optional
from urllib.parse import SplitResult

from proxy.core.outbound import Connections, connect, target

READ_SIZE = 64 * 1024


class Deadline(Connections):
    """A call's connections, shut when its deadline passes (or it ends)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self._timer = threading.Timer(max(seconds, 0.0), self.end)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> "Deadline":
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.end()

    @property
    def passed(self) -> bool:
        """Whether the deadline has passed (the call is still on until then)."""
        return self.ended


@dataclass(frozen=True)
class Got:
    """What a GET got: the status, the content type and the redirect's target as the
    server wrote them, and the body of a 200 (``cut``: it went on past the bound)."""

    status: int
    content_type: str = ""
    location: str = ""
    body: bytes = b""
    cut: bool = False


def get(
    url: SplitResult, address: Optional[str], deadline: Deadline, most: int, headers: dict
) -> Got:
    """A GET of ``url``, connecting to ``address`` when given (else to the host by its
    name), reading at most ``most`` bytes of the body of a 200. A passed deadline is a
    ``TimeoutError``; a server that cannot be reached or breaks off, an ``OSError``, an
    ``http.client.HTTPException`` or a ``ValueError`` (a name that cannot be encoded)."""
    connection = connect(url, address, deadline)
    try:
        connection.request("GET", target(url), headers=headers)
        with connection.getresponse() as response:  # closed first: it holds the socket
            body, cut = bytearray(), False
            while response.status == 200 and not cut:
                piece = response.read1(min(READ_SIZE, most + 1 - len(body)))
                if not piece:
                    break
                body += piece
                cut = len(body) > most
            got = Got(
                response.status,
                response.getheader("Content-Type", ""),
                response.getheader("Location", ""),
                bytes(body[:most]),
                cut,
            )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.passed or isinstance(exc, TimeoutError):
            raise TimeoutError("the call's deadline has passed") from None
        raise
    finally:
        connection.close()
    if deadline.passed:  # a connection shut at the deadline reads as its end
        raise TimeoutError("the call's deadline has passed")
    return got
