"""What an image can cost the proxy. Bombs of each kind the servers read, whose few bytes
declare a picture of gigabytes, sent inline to a model that cannot even see: each is a 400
naming its field, for a few megabytes and well under a second; so is each uploaded to be
edited, before a model is asked. Images by URL whose servers
drip their bytes, one URL or several: fetched at once, and hung up on at the one fetch
deadline. Images over the limit together, though each is under it: refused.

A request's body is held whole while it is read, as bytes and as the text parsed from them,
before any image in it is looked at: the 27 MB body of the PNG of empty chunks costs some
80 MiB however its image is checked. What a bomb may cost is counted beyond that."""

from __future__ import annotations

import json
import select
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.hostile.conftest import ALICE
from tests.hostile.cost import MiB, measured
from tests.images import data_uri, lossless_webp, noise, picture, rle_bmp, with_empty_chunks
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.hostile

MOST_GROWTH = 64 * MiB  # of the proxy's memory for one bomb, beyond holding its body twice
MOST_SECONDS = 1.0  # of the proxy's processor time, for one bomb (it never reaches a server)
LIMIT = 60_000  # bytes: --max-image-size of the fetching proxy
DRIP = 2.0  # seconds between the bytes of a dripping image server
DRIPPED = 15  # bytes a dripping image server sends: half a minute of them

BOMBS = {  # each declares 9000x9000 pixels: 81 million, 243 MB as RGB
    "webp-28-bytes": (lambda: lossless_webp(9000, 9000), "more pixels"),
    "jpeg-1.3-MB": (lambda: picture("JPEG", size=(9000, 9000)), "more pixels"),
    "rle-bmp-670-kB": (lambda: rle_bmp(9000, 9000), "run-length"),
    "png-of-1.7-M-empty-chunks": (lambda: with_empty_chunks(1_700_000), "chunks"),
}


def field(index: int) -> str:
    """The field of the request's ``index``-th image (after its text)."""
    return f"messages[0].content[{index + 1}].image_url.url"


def chat(*urls: str) -> bytes:
    """A chat body asking the tiny model about the images at ``urls``."""
    return json.dumps(
        {
            "model": "tiny",
            "max_tokens": 4,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        *({"type": "image_url", "image_url": {"url": url}} for url in urls),
                    ],
                }
            ],
        }
    ).encode()


def post(url: str, body: bytes) -> requests.Response:
    return requests.post(
        url + "/v1/chat/completions",
        data=body,
        timeout=120,
        headers={"Authorization": f"Bearer {ALICE}", "Content-Type": "application/json"},
    )


@pytest.fixture(scope="module")
def bodies() -> dict:
    """Each bomb's chat body, built once."""
    return {name: chat(data_uri(make())) for name, (make, _) in BOMBS.items()}


@pytest.mark.parametrize("bomb", BOMBS)
def test_an_image_bomb_is_refused_by_its_header_for_next_to_nothing(gateway, bodies, bomb):
    body = bodies[bomb]
    answer, cost = measured(gateway.pid, lambda: post(gateway.url, body))
    print(f"{bomb} ({len(body)} bytes): {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == field(0)
    assert BOMBS[bomb][1] in error["message"]
    assert cost.growth < MOST_GROWTH + 2 * len(body), cost
    assert cost.cpu < MOST_SECONDS, cost


PNG = noise((100, 100))  # 30 kB: each under LIMIT, two over it together


class _Images(BaseHTTPRequestHandler):
    """``/drip``: a PNG's first DRIPPED bytes, one every DRIP seconds; ``/met``: a small PNG,
    once three requests for it are there at the same time; ``/png``: a 30 kB PNG at once."""

    def do_GET(self):
        path = self.path.split("?")[0]
        with self.server.held():
            if path == "/met":
                try:
                    self.server.meeting.wait()
                except threading.BrokenBarrierError:  # the three never were there at once
                    return
            image = picture() if path == "/met" else PNG
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(image)))
            self.end_headers()
            try:
                if path == "/drip":
                    self.server.dripped.append(self.drip(image[:DRIPPED]))
                else:
                    self.wfile.write(image)
            except OSError:  # the proxy hung up
                pass

    def drip(self, data: bytes) -> int:
        """Send ``data`` a byte every DRIP seconds; how many had gone out when the proxy hung
        up (all of them if it never did)."""
        for sent in range(len(data)):
            try:
                self.wfile.write(data[sent : sent + 1])
            except OSError:
                return sent
            if select.select([self.connection], [], [], DRIP)[0]:  # asked nothing more: an end
                return sent + 1
        return len(data)

    def log_message(self, *args):
        pass


class Site(ThreadingHTTPServer):
    """The images' server: the most requests it held at once, and what each drip sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Images)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.meeting = threading.Barrier(3, timeout=30)
        self.dripped = []  # of each drip, the bytes sent when the proxy hung up
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()

    @contextmanager
    def held(self):
        """Count a request as held for the ``with`` block."""
        with self._lock:
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            yield
        finally:
            with self._lock:
                self._at_once -= 1


@pytest.fixture
def site():
    server = Site()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fetching(gateway, logs, tmp_path_factory):
    """A proxy that fetches images from any address, in front of the gateway's server."""
    folder = tmp_path_factory.mktemp("fetching")
    (folder / "models.toml").write_text(f'[models.tiny]\nupstreams = ["{gateway.server.url}"]\n')
    with ProxyProcess(
        gateway.server.url,
        logs / "proxy-fetching.log",
        args=[
            "--config",
            str(folder / "models.toml"),
            "--image-urls",
            "any",
            "--max-image-size",
            str(LIMIT),
        ],
    ) as proxy:
        yield proxy


@pytest.mark.parametrize(
    "paths", [["/drip"], ["/drip?1", "/drip?2", "/drip?3"]], ids=["one", "three"]
)
def test_images_that_drip_end_the_request_within_one_deadline(fetching, site, paths):
    """The drips were all asked for at once, and the proxy hung up on each at its deadline,
    long before the drip would have ended: one deadline for them all, however steady."""
    body = chat(*(site.url + path for path in paths))
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"{len(paths)} dripping: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] in [field(i) for i in range(len(paths))]
    assert "its server took more than 10 s" in error["message"], error
    wait_for(lambda: len(site.dripped) == len(paths), "the drips to end")
    assert site.most_at_once == len(paths)
    assert max(site.dripped) < DRIPPED, site.dripped


def test_slow_images_are_fetched_at_once(fetching, site):
    """Three images whose server sends none until all three are asked for (fetched one after
    another, the first would wait out the deadline), then the model (which cannot see) is
    named."""
    body = chat(site.url + "/met?1", site.url + "/met?2", site.url + "/met?3")
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"3 slow: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    assert "cannot see images" in answer.json()["error"]["message"]


def test_images_over_the_limit_together_are_refused(fetching, site):
    body = chat(site.url + "/png?1", site.url + "/png?2", site.url + "/png?3")
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"3 x {len(PNG)} bytes: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] in [field(i) for i in range(3)]
    assert f"{LIMIT} bytes" in error["message"]


@pytest.mark.parametrize("bomb", BOMBS)
def test_an_image_bomb_uploaded_to_edit_is_refused_by_its_header_for_next_to_nothing(gateway, bomb):
    make, says = BOMBS[bomb]
    upload = make()

    def edit() -> requests.Response:
        sent = {"image": ("bomb", upload, "application/octet-stream")}
        return requests.post(gateway.url + "/v1/images/edits", timeout=120,
                             headers={"Authorization": f"Bearer {ALICE}"},
                             data={"model": "tiny", "prompt": "brighter"}, files=sent)  # fmt: skip

    answer, cost = measured(gateway.pid, edit)
    print(f"{bomb} ({len(upload)} bytes): {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "image" and says in error["message"]
    assert cost.growth < MOST_GROWTH + 2 * len(upload), cost
    assert cost.cpu < MOST_SECONDS, cost
