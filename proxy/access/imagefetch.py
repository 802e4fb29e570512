"""Images clients give by http(s) URL, fetched on their behalf only as the operator allows
(``--image-urls``): ``public`` reaches addresses on the internet only
(:mod:`proxy.core.addresses` says which), and connects to the very address it checked
(:mod:`proxy.core.outbound`); ``any`` reaches the proxy's
machine and its LAN too. No redirect is followed (it could lead anywhere).

A request's images are fetched at once, a thread each, and all of them together have one
deadline, from the first connect to the last byte, and the bytes one image may have: servers
that drip their bytes, or many URLs, hold a request no longer than one slow image would, and
take no more memory than one large one. At the deadline, or at the first image that fails,
every connection still open is shut, which ends its thread.
"""

from __future__ import annotations

import http.client
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Optional
from urllib.parse import SplitResult, urlsplit

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.outbound import Connections, Resolve, connect, public_address, resolved, target
from proxy.core.types import GenerationRequest, Image

FETCH_TIMEOUT = 10.0  # seconds for a request's images, from the first connect to the last byte
MOST_AT_ONCE = 8  # fetches of one request running at once, a thread each
READ_SIZE = 64 * 1024
HEADERS = {"User-Agent": "oai-proxy", "Accept": "image/*"}


class ImageFetcher:
    """Fetches the URL images of a request, within ``policy`` and ``bounds`` (the bytes of
    one image are those of a request's URL images together)."""

    def __init__(
        self,
        policy: str,
        bounds: images.Bounds,
        *,
        timeout: float = FETCH_TIMEOUT,
        resolve: Resolve = resolved,
    ) -> None:
        self.policy = policy
        self.bounds = bounds
        self.timeout = timeout
        self.resolve = resolve

    def fetched(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with each image given by URL fetched and checked."""
        wanted = [image for image in request.images if image.url]
        if not wanted:
            return request
        got = {image.field: image for image in self._all(wanted)}
        return replace(
            request,
            messages=tuple(
                replace(
                    message, images=tuple(got.get(image.field, image) for image in message.images)
                )
                if any(image.url for image in message.images)
                else message
                for message in request.messages
            ),
        )

    def _all(self, wanted: list) -> list:
        """``wanted`` fetched at once, within one deadline and one budget of bytes."""
        fetches = Fetches(self.timeout, self.bounds.size)
        pool = ThreadPoolExecutor(min(len(wanted), MOST_AT_ONCE), "image-fetch")
        futures = [pool.submit(self._fetch, image, fetches) for image in wanted]
        try:
            done, _ = wait(futures, fetches.left(), FIRST_EXCEPTION)
        finally:
            fetches.end()
            pool.shutdown(wait=False, cancel_futures=True)
        for future in futures:  # the first failure, in the request's order
            if future in done and future.exception() is not None:
                raise future.exception()
        for image, future in zip(wanted, futures, strict=True):
            if future not in done:
                raise _fail(
                    image, f"could not be fetched: its server took more than {self.timeout:g} s"
                )
        return [future.result() for future in futures]

    def _fetch(self, image: Image, fetches: "Fetches") -> Image:
        url = urlsplit(image.url)
        address = None
        if self.policy == "public":
            address = public_address(url.hostname or "", self.resolve)
            if address is None:
                raise _fail(
                    image,
                    "is not on the internet (the proxy fetches images from public addresses only)",
                )
        try:
            status, raw = fetch(url, address, fetches)
        except TooLarge as too:
            if too.read > self.bounds.size:
                raise images.too_large(image.field, self.bounds.size) from None
            raise _fail(
                image,
                f"could not be fetched: the images this request gives by URL "
                f"are larger together than the {self.bounds.size} bytes one "
                f"image may be",
            ) from None
        except (OSError, http.client.HTTPException, ValueError):
            raise _fail(image, "could not be fetched: its server did not answer") from None
        if status != 200:
            raise _fail(image, f"could not be fetched: its server answered {status}")
        return images.from_bytes(raw, image.field, self.bounds, image.at)


class Fetches(Connections):
    """One request's fetches: their connections under one deadline, and the bytes they may
    still read together."""

    def __init__(self, seconds: float, most: int) -> None:
        super().__init__(seconds)
        self.unread = most
        self._counting = threading.Lock()

    def took(self, count: int, read: int) -> None:
        """Count ``count`` bytes more, of an image of ``read`` bytes so far."""
        with self._counting:
            self.unread -= count
            spent = self.unread < 0
        if spent:
            raise TooLarge(read)


class TooLarge(Exception):
    """The images of a request read more bytes together than they may; ``read``: the bytes
    read of the one that went over."""

    def __init__(self, read: int) -> None:
        super().__init__(read)
        self.read = read


def fetch(url: SplitResult, address: Optional[str], fetches: Fetches) -> tuple:
    """``(status, body)`` of a GET of ``url`` within ``fetches``' deadline and bytes,
    connecting to ``address`` when given (the name still goes in the Host header and TLS's
    SNI)."""
    connection = connect(url, address, fetches)
    try:
        connection.request("GET", target(url), headers=HEADERS)
        with connection.getresponse() as response:  # closed first: it holds the socket
            if response.status != 200:
                return response.status, b""
            body = bytearray()
            while True:
                piece = response.read1(READ_SIZE)
                if not piece:
                    return 200, body
                body += piece
                fetches.took(len(piece), len(body))
    finally:
        connection.close()


def _fail(image: Image, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{image.field}' {message}", param=image.field)
