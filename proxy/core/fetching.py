"""One GET of a URL a client or a model names (an image by its URL, a page a web tool
reads), and of where it redirects where the caller follows redirects: every connection of
the call made to the address checked before (:mod:`proxy.core.outbound`), each redirect
checked as the first URL was, at most a bound of bytes read, and one deadline for the whole
call, from its first connect to its last byte: at the deadline every connection the call
opened is shut, which ends a read waiting on it, however a server drips its bytes.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, replace
from typing import Optional
from urllib.parse import SplitResult, urljoin

from proxy.core.addresses import has_credentials, http_parts
from proxy.core.outbound import CallSockets, Resolve, connect, public_address, resolve, target

READ_SIZE = 64 * 1024  # bytes asked of a socket at once
REDIRECTING = frozenset({301, 302, 303, 307, 308})


class Deadline(CallSockets):
    """A call's sockets, shut when its deadline passes (or it ends), and the bytes its
    GETs may still read together (``most``; None: each GET's own bound alone)."""

    def __init__(self, seconds: float, most: Optional[int] = None) -> None:
        super().__init__(seconds)
        self.unread = most
        self._counting = threading.Lock()
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

    def spend(self, count: int) -> None:
        """Count ``count`` bytes read; past the bytes the call may read together,
        :class:`TooLarge`."""
        if self.unread is None:
            return
        with self._counting:
            self.unread -= count
            spent = self.unread < 0
        if spent:
            raise TooLarge()


class TooLarge(Exception):
    """The GETs of a call read more bytes together than it may."""


class Unfetched(Exception):
    """A URL not fetched, and why (the subclass): ``url``, the first one or a redirect's."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    @property
    def host(self) -> str:
        parts = http_parts(self.url)  # None: a malformed one
        return parts.hostname if parts else ""


class NotWeb(Unfetched):
    """What is no http(s) URL: the one named, or a redirect's."""


class WithCredentials(Unfetched):
    """A URL holding a user name or password, where the caller fetches none."""


class NotPublic(Unfetched):
    """A host not on the internet (or with no address), where the caller allows only those
    that are."""


class TimedOut(Unfetched):
    """The call's deadline passed before the answer's last byte."""


class Unanswered(Unfetched):
    """A host that could not be reached, or broke off its answer."""


@dataclass(frozen=True)
class Got:
    """What a GET got: the status, the content type and the redirect's target as the
    server wrote them, and the body of a 200 (``cut``: it went on past the bound); ``url``:
    where a fetch ended, as it was named."""

    status: int
    content_type: str = ""
    location: str = ""
    body: bytes = b""
    cut: bool = False
    url: str = ""


def fetch(
    url: str,
    deadline: Deadline,
    most: int,
    headers: dict,
    *,
    policy: str = "public",
    resolve: Resolve = resolve,
    redirects: int = 0,
    credentials: bool = True,
) -> Got:
    """What a GET of ``url`` got, following ``redirects`` redirects at the most (one past
    them is what it got), each to an http(s) URL: under ``policy`` ``"public"`` each host is
    reached at a public address only, the one checked (``resolve`` finds them); without
    ``credentials``, no URL holding a user name or password is fetched (none is ever sent).
    What is not fetched is an :class:`Unfetched` naming its URL; bytes past those the
    deadline allows together, :class:`TooLarge`."""
    parts, followed = http_parts(url), 0
    if parts is None:
        raise NotWeb(url)
    while True:
        if not credentials and has_credentials(parts):
            raise WithCredentials(url)
        address = None
        if policy == "public":
            address = public_address(parts.hostname or "", resolve)
            if address is None:
                raise NotPublic(url)
        try:
            got = get(parts, address, deadline, most, headers)
        except TimeoutError:
            raise TimedOut(url) from None
        except (OSError, http.client.HTTPException, ValueError):
            raise Unanswered(url) from None
        if followed == redirects or got.status not in REDIRECTING or not got.location:
            return replace(got, url=url)
        followed += 1
        try:
            url = urljoin(url, got.location.strip())
        except ValueError:  # a malformed one (``http://[::1``)
            raise NotWeb(got.location.strip()) from None
        parts = http_parts(url)
        if parts is None:
            raise NotWeb(url)


def get(
    url: SplitResult, address: Optional[str], deadline: Deadline, most: int, headers: dict
) -> Got:
    """A GET of ``url``, connecting to ``address`` when given (else to the host by its
    name; the name still goes in the Host header and TLS's SNI), reading at most ``most``
    bytes of the body of a 200. A passed deadline is a ``TimeoutError``; a server that
    cannot be reached or breaks off, an ``OSError``, an ``http.client.HTTPException`` or a
    ``ValueError`` (a name that cannot be encoded); bytes past the deadline's together,
    :class:`TooLarge`."""
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
                if not cut:
                    deadline.spend(len(piece))
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
