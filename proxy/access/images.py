"""Images clients give by http(s) URL, fetched on their behalf only as the operator allows
(``--image-urls``): ``public`` reaches addresses on the internet only, never the proxy's own
machine, its LAN or a cloud's metadata service; ``any`` reaches those too. No redirect is
followed (it could lead anywhere), and no more than the image limit is read."""
from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Callable, Optional, Sequence
from urllib.parse import urlsplit

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, Image, Message

FETCH_TIMEOUT = 10.0  # seconds for an image's server to answer, and between its bytes
HEADERS = {"User-Agent": "oai-proxy", "Accept": "image/*"}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an error: see the docstring
        return None


class ImageFetcher:
    """Fetches the URL images of a request, within ``policy`` and the size ``limit``."""

    def __init__(self, policy: str, limit: int, *, timeout: float = FETCH_TIMEOUT,
                 resolve: Optional[Callable[[str], list]] = None) -> None:
        self.policy = policy
        self.limit = limit
        self.timeout = timeout
        self.resolve = resolve or _addresses
        self.opener = urllib.request.build_opener(_NoRedirects)

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
        host = urlsplit(image.url).hostname or ""
        if self.policy == "public" and not self._public(host):
            raise _fail(image, "is not on the internet (the proxy fetches images from public "
                               "addresses only)")
        try:
            with self.opener.open(urllib.request.Request(image.url, headers=HEADERS),
                                  timeout=self.timeout) as response:
                if response.status != 200:
                    raise _fail(image, f"could not be fetched: its server answered "
                                       f"{response.status}")
                raw = response.read(self.limit + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _fail(image, f"could not be fetched: its server answered {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError):
            raise _fail(image, "could not be fetched: its server did not answer") from None
        return images.from_bytes(raw, image.field, self.limit, image.at)

    def _public(self, host: str) -> bool:
        try:
            return public(self.resolve(host))
        except (OSError, UnicodeError):
            return False


def public(addresses: Sequence[str]) -> bool:
    """Whether a host at ``addresses`` is on the internet: each of them is."""
    return bool(addresses) and all(ipaddress.ip_address(a).is_global for a in addresses)


def _addresses(host: str) -> list:
    """Every address ``host`` resolves to."""
    return [info[4][0].split("%")[0] for info in socket.getaddrinfo(host, None)]


def _fail(image: Image, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{image.field}' {message}", param=image.field)
