"""What every client API is to the proxy, and what every dialect reads alike.

What every client API is to the proxy: a :class:`Dialect`, and the one :class:`Ask` its bodies
become.

Each dialect (``openai.chat``, ``openai.completions``, ``anthropic``, ``responses``,
``ollama.chat``, ``ollama.generate``, ``glm``) is a module whose functions are the protocol's.
The API serves every one the same way (:func:`proxy.api.serve.serve`): parse the body, run its
requests on the core, render the answer whole or as a stream.

A message's content as the dialects read it: text pieces joined as one text, with the images and
sounds met between them kept at their places in it.

Client text a dialect names back in a response header (options it ignored, tools it left out)
goes out as visible ASCII (:func:`named`): a header line ends at CR or LF, and HTTP servers
write headers as Latin-1, so a name the client chose, put in a header as it came, would end
the line early or fail to encode at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence
from urllib.parse import quote

from proxy.core import audio, images
from proxy.core.addresses import http_parts
from proxy.core.errors import InvalidRequestError, ProxyError
from proxy.core.images import Bounds
from proxy.core.types import GenerationRequest, Image, amended
from proxy.dialects.streaming import EventRenderer

# visible ASCII but the list's separator and the escape itself: all else is percent-encoded
KEPT = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in ",%")
MOST = 2048  # characters of one header value; clients refuse header lines of a few KiB


@dataclass(frozen=True)
class Limits:
    """What the operator lets one request ask for."""

    max_choices: int = 8  # ``n`` times the prompts
    max_batch: int = 256  # inputs of one embeddings request
    max_image_size: int = 20 * 1024 * 1024  # bytes of one image
    max_image_pixels: int = 4096 * 4096  # pixels one image may declare
    image_urls: bool = False  # images given by http(s) URL are fetched (else refused)
    max_tools: int = 128  # tools one request offers
    max_schema_size: int = 32 * 1024  # bytes of one schema's JSON (a tool's, a format's)
    max_body_size: int = 32 * 1024 * 1024  # bytes of one body (a batch's line)
    max_containers: int = 65536  # arrays and objects one body holds
    max_nesting: int = 64  # levels they nest
    max_audio_size: int = 25 * 1024 * 1024  # bytes of one audio file a transcription uploads

    @property
    def image(self) -> Bounds:
        """What one image may be, as :mod:`proxy.core.images` checks it."""
        return Bounds(self.max_image_size, self.max_image_pixels)


@dataclass(frozen=True)
class Ask:
    """A client's request as the core runs it: its generations, each asked ``n`` times,
    whether the answer streams, and what the dialect must remember to render it (``notes``,
    of the dialect's own type)."""

    requests: tuple
    n: int = 1
    stream: bool = False
    notes: Any = None
    # the types of the hosted tools it asks for that the gateway does not run (the API's own
    # servers run them: file search, code execution…): refused, unless the model leaves
    # them out
    not_run: tuple = ()
    # the names of the tools it offers that the model is not offered (a client's own, such as
    # Anthropic's bash), named in the answer's header
    not_offered: tuple = ()
    # the servers of tools its body asks the model's own server to run (a body passed on
    # verbatim), as ``(server, field)``: granted to the key as the gateway's own would be
    upstream_runs: tuple = ()

    @property
    def request(self) -> GenerationRequest:
        """The first (for most dialects, the only) generation."""
        return self.requests[0]

    @property
    def model(self):
        return self.requests[0].model

    def amended(self, amend: Callable[[GenerationRequest], GenerationRequest]) -> "Ask":
        """This ask with ``amend(request)`` in place of each of its requests (itself, where
        none changed)."""
        requests = tuple(amend(request) for request in self.requests)
        if all(new is old for new, old in zip(requests, self.requests, strict=True)):
            return self
        return amended(self, requests=requests)


def hosted_refusal(ask: Ask, model: str) -> InvalidRequestError:
    """The 400 of a hosted tool the gateway does not run, naming its type, as the APIs'
    own servers refuse a tool a model cannot use."""
    return InvalidRequestError(
        f"the tool type {ask.not_run[0]!r} is a hosted tool, which this gateway does not "
        f"run for the model {model!r}; its operator may leave such tools out for it "
        f"(drop_hosted_tools in the models file, --hosted-tools drop)",
        param="tools",
    )


class Dialect(Protocol):
    """One client API, both ways, free of I/O."""

    patient: bool  # its streams keep a client company while a slot is awaited, too

    def parse(self, body: Any, limits: Limits) -> Ask:
        """The body as an :class:`Ask`; a bad field is a 400 naming it."""

    def new_id(self) -> str:
        """A new answer's id, as the API writes them."""

    def render(self, ask: Ask, id: str, model: str, completions: Sequence) -> dict:
        """The whole answer, one completion per choice."""

    def stream(self, ask: Ask, id: str, model: str) -> EventRenderer:
        """The renderer of the answer's stream."""

    def error_body(self, error: ProxyError) -> dict:
        """An error, in the API's own shape."""

    def headers(self, ask: Ask) -> dict:
        """Response headers of the API's own the answer carries (what of the request it
        did not read)."""


JOINER = "\n"


class Content:
    """Collects one message's text, images and sounds in the order the client gave them."""

    def __init__(self, limits: Limits, lead: str = "") -> None:
        """``lead``: words the text begins with, before anything the client sent."""
        self.limits = limits
        self.lead = lead
        self.texts: list = []
        self.images: list = []
        self.sounds: list = []
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
        self.add_image(image_at(url, field, self.limits))

    def add_base64(self, data: str, field: str) -> None:
        """An image given as its bytes in base64."""
        self.add_image(images.from_base64(data, field, self.limits.image))

    def add_image(self, image: Image) -> None:
        """An image read before, placed here."""
        self.images.append(amended(image, at=self.length, order=self._placed()))

    def add_sound(self, data: str, field: str) -> None:
        """Audio given as its bytes in base64."""
        sound = audio.sound_of(data, field, self.limits.max_audio_size)
        self.sounds.append(amended(sound, at=self.length, order=self._placed()))

    def _placed(self) -> int:
        """The place of the next image or sound among those before it."""
        return len(self.images) + len(self.sounds)


def image_at(url: str, field: str, limits: Limits, at: int = 0) -> Image:
    """The image of a URL a client gave: a data URI, read now, or an http(s) one, fetched
    before the request runs when the operator allows it."""
    if url.startswith("data:"):
        return images.from_data_uri(url, field, limits.image, at)
    if http_parts(url) is None:  # a malformed one too (``http://[::1``)
        raise InvalidRequestError(f"'{field}' must be a data URI or an http(s) URL", param=field)
    if not limits.image_urls:
        raise InvalidRequestError(
            f"'{field}' is a URL, and this proxy fetches no images: send the image inline, as "
            f"a data URI (data:image/png;base64,…)",
            param=field,
        )
    return Image(field, at, url=url)


def named(items: Iterable[str]) -> str:
    """``items`` as a comma-separated header value, each percent-encoded (UTF-8) to visible
    ASCII, as URLs are; past :data:`MOST` characters, the rest are counted rather than
    named."""
    encoded = [quote(item, safe=KEPT, errors="surrogatepass") for item in items]
    value = ", ".join(encoded)
    if len(value) <= MOST:
        return value
    shown, length = 0, 0
    while length + len(encoded[shown]) + 2 <= MOST:
        length += len(encoded[shown]) + 2
        shown += 1
    return ", ".join([*encoded[:shown], f"({len(encoded) - shown} more)"])
