"""Images given by URL are fetched from a real HTTP server, only where the policy allows, all
of a request's at once, within one deadline and the bytes of one image."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from proxy.core.errors import InvalidRequestError
from proxy.core.imagefetch import ImageFetcher
from proxy.core.images import Bounds
from proxy.core.types import GenerationRequest, Image, Message
from tests.images import base64_of, noise, picture

PNG = picture()
SMALL = noise((24, 24))  # 1.8 kB, which does not compress
FIELD = "messages[0].content[0].image_url.url"
BOUNDS = Bounds(size=1 << 20, pixels=1 << 20)
TIGHT = Bounds(size=2000, pixels=1 << 20)


class _Images(BaseHTTPRequestHandler):
    """Images, and what else a server may answer. ``/met``: a PNG, once three requests for
    it are there at the same time."""

    routes = {
        "/cat.png": (200, PNG),
        "/big.png": (200, noise()),
        "/small.png": (200, SMALL),
        "/notes.txt": (200, b"not an image"),
        "/gone.png": (404, b""),
        "/moved.png": (302, b""),
        "/drip.png": (200, PNG),
        "/met.png": (200, PNG),
    }

    meeting = threading.Barrier(3)

    def do_GET(self):
        path = urlsplit(self.path).path
        status, body = self.routes.get(path, (404, b""))
        if path == "/met.png":
            self.meeting.wait(timeout=30)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/cat.png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if path == "/drip.png":  # a byte every 0.1 s: never a pause to time out on
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(body)
        except OSError:  # the fetcher hung up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def asking(*urls: str) -> GenerationRequest:
    """A request showing the images at ``urls``, the first in the user's message, the rest
    in a second one."""
    first, *rest = urls
    return GenerationRequest(
        messages=(
            Message("system", "be brief"),
            Message("user", "what is this?", images=(Image(FIELD, 3, url=first),)),
            *(
                Message(
                    "user", "and this?", images=(Image(f"messages[{2 + n}].images[0]", url=url),)
                )
                for n, url in enumerate(rest)
            ),
        )
    )


def test_an_image_is_fetched_and_kept_in_its_place(site):
    fetched = ImageFetcher("any", BOUNDS).fetch(asking(site + "/cat.png"))
    assert fetched.messages[1].images == (Image(FIELD, 3, "image/png", base64_of(PNG)),)
    assert fetched.messages[0] == Message("system", "be brief")


def test_a_request_without_urls_is_left_as_it_is():
    request = GenerationRequest(messages=(Message("user", "hi"),))
    assert ImageFetcher("any", BOUNDS).fetch(request) is request


def test_the_images_of_a_request_are_fetched_at_once(site):
    """Each of the three is answered only once all three are asked for."""
    fetched = ImageFetcher("any", BOUNDS).fetch(asking(*[site + f"/met.png?{n}" for n in range(3)]))
    assert [image.data for image in fetched.images] == [base64_of(PNG)] * 3
    assert [image.field for image in fetched.images] == [
        FIELD,
        "messages[2].images[0]",
        "messages[3].images[0]",
    ]


def test_an_image_that_drips_ends_at_the_deadline_however_steady(site):
    with pytest.raises(InvalidRequestError, match="its server took more than 1 s") as caught:
        ImageFetcher("any", BOUNDS, timeout=1).fetch(asking(site + "/cat.png", site + "/drip.png"))
    assert caught.value.param == "messages[2].images[0]"


def test_images_under_the_limit_each_are_refused_over_it_together(site):
    with pytest.raises(InvalidRequestError, match="larger together than the 3000 bytes") as caught:
        ImageFetcher("any", Bounds(size=3000, pixels=1 << 20)).fetch(
            asking(site + "/small.png?1", site + "/small.png?2")
        )
    assert caught.value.param in (FIELD, "messages[2].images[0]")


def test_an_image_of_too_many_pixels_is_refused(site):
    with pytest.raises(InvalidRequestError, match="more pixels than an image may have"):
        ImageFetcher("any", Bounds(size=1 << 20, pixels=100)).fetch(asking(site + "/cat.png"))


@pytest.mark.parametrize(
    "path, policy, says",
    [
        ("/cat.png", "public", "is not on the internet"),
        ("/notes.txt", "any", "is not an image"),
        ("/gone.png", "any", "its server answered 404"),
        ("/moved.png", "any", "its server answered 302"),
        ("/big.png", "any", "larger than the 2000 bytes"),
    ],
)
def test_what_cannot_be_fetched_is_a_400_naming_the_field(site, path, policy, says):
    with pytest.raises(InvalidRequestError) as caught:
        ImageFetcher(policy, TIGHT).fetch(asking(site + path))
    assert caught.value.param == FIELD
    assert says in caught.value.message
    assert "127.0.0.1" not in caught.value.message  # no address reaches the client


def test_a_host_that_resolves_to_the_lan_is_not_fetched_under_public():
    fetcher = ImageFetcher("public", TIGHT, resolve=lambda host: ["192.168.1.2"])
    with pytest.raises(InvalidRequestError, match="is not on the internet"):
        fetcher.fetch(asking("http://images.example/cat.png"))


def test_a_host_that_does_not_answer_is_named_without_its_address():
    with pytest.raises(InvalidRequestError, match="did not answer") as caught:
        ImageFetcher("any", TIGHT, timeout=2).fetch(asking("http://127.0.0.1:9/cat.png"))
    assert caught.value.param == FIELD
