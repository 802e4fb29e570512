"""Images clients give by http(s) URL, fetched on their behalf only as the operator allows
(``--image-urls``): ``public`` reaches addresses on the internet only, never the proxy's own
machine, its LAN or a cloud's metadata service, and connects to the very address it checked
(a name that resolves otherwise a moment later changes nothing); ``any`` reaches those too.
No redirect is followed (it could lead anywhere), and no more than the image limit is read."""
from __future__ import annotations

import http.client
import ipaddress
import socket
from dataclasses import replace
from typing import Callable, Optional, Sequence
from urllib.parse import SplitResult, urlsplit

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, Image, Message

FETCH_TIMEOUT = 10.0  # seconds for an image's server to answer, and between its bytes
HEADERS = {"User-Agent": "oai-proxy", "Accept": "image/*"}


class ImageFetcher:
    """Fetches the URL images of a request, within ``policy`` and ``bounds``."""

    def __init__(self, policy: str, bounds: images.Bounds, *, timeout: float = FETCH_TIMEOUT,
                 resolve: Optional[Callable[[str], list]] = None) -> None:
        self.policy = policy
        self.bounds = bounds
        self.timeout = timeout
        self.resolve = resolve or _addresses

    def fetched(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with each image given by URL fetched and checked."""
        if not any(image.url for image in request.images):
            return request
        return replace(request, messages=tuple(self._message(m) for m in request.messages))

    def _message(self, message: Message) -> Message:
        if not any(image.url for image in message.images):
            return message
        return replace(message, images=tuple(self._fetch(image) if image.url else image
                                             for image in message.images))

    def _fetch(self, image: Image) -> Image:
        url = urlsplit(image.url)
        address = None
        if self.policy == "public":
            address = self._public_address(url.hostname or "")
            if address is None:
                raise _fail(image, "is not on the internet (the proxy fetches images from "
                                   "public addresses only)")
        try:
            status, raw = fetch(url, address, self.timeout, self.bounds.size + 1)
        except (OSError, http.client.HTTPException, ValueError):
            raise _fail(image, "could not be fetched: its server did not answer") from None
        if status != 200:
            raise _fail(image, f"could not be fetched: its server answered {status}")
        return images.from_bytes(raw, image.field, self.bounds, image.at)

    def _public_address(self, host: str) -> Optional[str]:
        """An address of ``host`` to connect to, if every one of them is public."""
        try:
            addresses = self.resolve(host)
        except (OSError, UnicodeError):
            return None
        return addresses[0] if public(addresses) else None


def fetch(url: SplitResult, address: Optional[str], timeout: float, most: int) -> tuple:
    """``(status, at most `most` bytes of the body)`` of a GET of ``url``, connecting to
    ``address`` when given (the name still goes in the Host header and TLS's SNI)."""
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname, url.port, timeout=timeout)
    if address is not None:
        # http.client's own hook for opening the socket: the host's name stays for the rest
        connection._create_connection = lambda where, *args: socket.create_connection(
            (address, where[1]), *args)
    try:
        path = url.path or "/"
        connection.request("GET", f"{path}?{url.query}" if url.query else path,
                           headers=HEADERS)
        response = connection.getresponse()
        return response.status, response.read(most) if response.status == 200 else b""
    finally:
        connection.close()


def public(addresses: Sequence[str]) -> bool:
    """Whether a host at ``addresses`` is on the internet: each of them is."""
    return bool(addresses) and all(ipaddress.ip_address(a).is_global for a in addresses)


def _addresses(host: str) -> list:
    """Every address ``host`` resolves to."""
    return [info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)]


def _fail(image: Image, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{image.field}' {message}", param=image.field)
