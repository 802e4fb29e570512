"""A message's content as the dialects read it: text pieces joined as one text, with the
images met between them kept at their places in it."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Image
from proxy.dialects.dialect import Limits

JOINER = "\n"


class Content:
    """Collects one message's text and images in the order the client gave them."""

    def __init__(self, limits: Limits, lead: str = "") -> None:
        """``lead``: words the text begins with, before anything the client sent."""
        self.limits = limits
        self.lead = lead
        self.texts: list = []
        self.images: list = []
        self.length = len(lead)  # of the text so far, joined

    @property
    def text(self) -> str:
        return self.lead + JOINER.join(self.texts)

    def add_text(self, text: str) -> None:
        if self.texts:
            self.length += len(JOINER)
        self.texts.append(text)
        self.length += len(text)

    def add_url(self, url: str, field: str) -> None:
        """An image given as a URL (see :func:`image_at`)."""
        self.images.append(image_at(url, field, self.limits, self.length))

    def add_base64(self, data: str, field: str) -> None:
        """An image given as its bytes in base64."""
        self.images.append(images.from_base64(data, field, self.limits.image, self.length))

    def add_image(self, image: Image) -> None:
        """An image read before, placed here."""
        self.images.append(replace(image, at=self.length))


def image_at(url: str, field: str, limits: Limits, at: int = 0) -> Image:
    """The image of a URL a client gave: a data URI, read now, or an http(s) one, fetched
    before the request runs when the operator allows it."""
    if url.startswith("data:"):
        return images.from_data_uri(url, field, limits.image, at)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise InvalidRequestError(f"'{field}' must be a data URI or an http(s) URL", param=field)
    if not limits.image_urls:
        raise InvalidRequestError(
            f"'{field}' is a URL, and this proxy fetches no images: send the image inline, as "
            f"a data URI (data:image/png;base64,…)",
            param=field,
        )
    return Image(field, at, url=url)
