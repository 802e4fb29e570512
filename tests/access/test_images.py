"""Images given by URL are fetched from a real HTTP server, only where the policy allows."""
from __future__ import annotations

import threading
from urllib.parse import urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proxy.access import images
from proxy.access.images import ImageFetcher
from proxy.core.errors import InvalidRequestError
from proxy.core.images import Bounds
from proxy.core.types import GenerationRequest, Image, Message
from tests.images import base64_of, noise, picture

PNG = picture()
FIELD = "messages[0].content[0].image_url.url"
BOUNDS = Bounds(size=1 << 20, pixels=1 << 20)
TIGHT = Bounds(size=2000, pixels=1 << 20)


class _Images(BaseHTTPRequestHandler):
    routes = {"/cat.png": (200, PNG), "/big.png": (200, noise()),
              "/notes.txt": (200, b"not an image"), "/gone.png": (404, b""),
              "/moved.png": (302, b"")}

    hosts: list = []  # the Host header of each request, in order

    def do_GET(self):
        self.hosts.append(self.headers["Host"])
        status, body = self.routes.get(self.path, (404, b""))
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/cat.png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def asking(url: str) -> GenerationRequest:
    return GenerationRequest(messages=(
        Message("system", "be brief"),
        Message("user", "what is this?", images=(Image(FIELD, 3, url=url),))))


def test_an_image_is_fetched_and_kept_in_its_place(site):
    fetched = ImageFetcher("any", BOUNDS).fetched(asking(site + "/cat.png"))
    assert fetched.messages[1].images == (Image(FIELD, 3, "image/png", base64_of(PNG)),)
    assert fetched.messages[0] == Message("system", "be brief")


def test_a_request_without_urls_is_left_as_it_is():
    request = GenerationRequest(messages=(Message("user", "hi"),))
    assert ImageFetcher("any", BOUNDS).fetched(request) is request


@pytest.mark.parametrize("path, policy, says", [
    ("/cat.png", "public", "is not on the internet"),
    ("/notes.txt", "any", "is not an image"),
    ("/gone.png", "any", "its server answered 404"),
    ("/moved.png", "any", "its server answered 302"),
    ("/big.png", "any", "larger than the 2000 bytes"),
])
def test_what_cannot_be_fetched_is_a_400_naming_the_field(site, path, policy, says):
    with pytest.raises(InvalidRequestError) as caught:
        ImageFetcher(policy, TIGHT).fetched(asking(site + path))
    assert caught.value.param == FIELD
    assert says in caught.value.message
    assert "127.0.0.1" not in caught.value.message  # no address reaches the client


def test_a_host_that_resolves_to_the_lan_is_not_fetched_under_public():
    fetcher = ImageFetcher("public", TIGHT, resolve=lambda host: ["192.168.1.2"])
    with pytest.raises(InvalidRequestError, match="is not on the internet"):
        fetcher.fetched(asking("http://images.example/cat.png"))


def test_a_fetch_connects_to_the_address_it_was_given_under_the_hosts_own_name(site):
    """The name need not resolve: the connection goes to the address checked before."""
    port = urlsplit(site).port
    status, body = images.fetch(urlsplit(f"http://images.invalid:{port}/cat.png"),
                                "127.0.0.1", 5, 1 << 20)
    assert (status, body) == (200, PNG)
    assert _Images.hosts[-1] == f"images.invalid:{port}"


def test_a_host_that_does_not_answer_is_named_without_its_address():
    with pytest.raises(InvalidRequestError, match="did not answer") as caught:
        ImageFetcher("any", TIGHT, timeout=2).fetched(asking("http://127.0.0.1:9/cat.png"))
    assert caught.value.param == FIELD


@pytest.mark.parametrize("addresses, public", [
    (["93.184.215.14"], True), (["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], True),
    (["10.0.0.7"], False), (["169.254.169.254"], False), (["::1"], False),
    (["93.184.215.14", "192.168.1.2"], False), ([], False)])
def test_public_means_every_address_of_the_host_is_on_the_internet(addresses, public):
    assert images.public(addresses) is public
