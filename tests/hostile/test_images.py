"""What an image can cost the proxy. Bombs of each kind the servers read, whose few bytes
declare a picture of gigabytes, sent inline to a model that cannot even see: each is a 400
naming its field, for a few megabytes and well under a second. Images by URL whose servers
drip their bytes, one URL or several: the request ends within one fetch deadline. Images
over the limit together, though each is under it: refused.

A request's body is held whole while it is read, as bytes and as the text parsed from them,
before any image in it is looked at: the 27 MB body of the PNG of empty chunks costs some
80 MiB however its image is checked. What a bomb may cost is counted beyond that."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.hostile.conftest import ALICE
from tests.hostile.cost import MiB, measured
from tests.images import data_uri, lossless_webp, noise, picture, rle_bmp, with_empty_chunks
from tests.processes import ProxyProcess

pytestmark = pytest.mark.hostile

MOST_GROWTH = 64 * MiB  # of the proxy's memory for one bomb, beyond holding its body twice
MOST_SECONDS = 1.0  # of the proxy's processor time, for one bomb (it never reaches a server)
DEADLINE = 12.0  # seconds for a request whose images are fetched: the proxy's 10, and room
LIMIT = 60_000  # bytes: --max-image-size of the fetching proxy
DRIP = 2.0  # seconds between the bytes of a dripping image server
SLOW = 5.0  # seconds a slow image server takes before it answers, whole

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
    print(
        f"{gateway.engine} {bomb} ({len(body)} bytes): {answer.status_code} "
        f"{answer.text[:200]!r}, {cost}"
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == field(0)
    assert BOMBS[bomb][1] in error["message"]
    assert cost.growth < MOST_GROWTH + 2 * len(body), cost
    assert cost.cpu < MOST_SECONDS, cost


PNG = noise((100, 100))  # 30 kB: each under LIMIT, two over it together


class _Images(BaseHTTPRequestHandler):
    """``/drip``: a PNG's first bytes, one every DRIP seconds, for half a minute;
    ``/slow``: a small PNG after SLOW seconds; ``/png``: a 30 kB PNG at once."""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(SLOW)
        image = picture() if path == "/slow" else PNG
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(image)))
        self.end_headers()
        try:
            if path == "/drip":
                for byte in image[:15]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(DRIP)
            else:
                self.wfile.write(image)
        except OSError:  # the proxy hung up
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


@pytest.fixture(scope="module")
def fetching(gateway, logs, tmp_path_factory):
    """A proxy that fetches images from any address, in front of the gateway's server."""
    folder = tmp_path_factory.mktemp(f"fetching-{gateway.engine}")
    (folder / "models.toml").write_text(f'[models.tiny]\nupstreams = ["{gateway.server.url}"]\n')
    with ProxyProcess(
        gateway.server.url,
        logs / f"proxy-fetching-{gateway.engine}.log",
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
    body = chat(*(site + path for path in paths))
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"{len(paths)} dripping: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] in [field(i) for i in range(len(paths))]
    assert cost.seconds < DEADLINE, cost


def test_slow_images_are_fetched_at_once(fetching, site):
    """Three images that each take SLOW seconds: the request waits for about one of them,
    then the model (which cannot see) is named."""
    body = chat(site + "/slow?1", site + "/slow?2", site + "/slow?3")
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"3 slow: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    assert "cannot see images" in answer.json()["error"]["message"]
    assert cost.seconds < 2 * SLOW, cost


def test_images_over_the_limit_together_are_refused(fetching, site):
    body = chat(site + "/png?1", site + "/png?2", site + "/png?3")
    answer, cost = measured(fetching.process.pid, lambda: post(fetching.url, body))
    print(f"3 x {len(PNG)} bytes: {answer.status_code} {answer.text[:200]!r}, {cost}")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] in [field(i) for i in range(3)]
    assert f"{LIMIT} bytes" in error["message"]
