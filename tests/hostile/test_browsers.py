"""A web page against a keyless proxy on loopback, in a real Chromium: a cross-site POST
cannot run a generation, and a name rebound to 127.0.0.1 reads nothing."""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager

import pytest
import requests
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import headless_chromium
from tests.polling import wait_for
from tests.processes import ProxyProcess, free_port

from .cost import MiB, measured

pytestmark = pytest.mark.hostile

ATTACKER = "attacker.test"  # Chromium resolves it to 127.0.0.1, as a rebound name would
CHAT = '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}'
PAGE = """<!doctype html><title>attacker</title><body><script>
fetch("http://127.0.0.1:%(proxy)d/v1/chat/completions", {method: "POST", mode: "no-cors",
      headers: {"Content-Type": "text/plain"}, body: %(chat)r})
  .then(() => { document.title = "posted"; }, () => { document.title = "posted"; });
</script>"""


@pytest.fixture(scope="module")
def keyless(gateway, logs):
    """The proxy as most run it: no keys, on 127.0.0.1."""
    with ProxyProcess(gateway.server.url, logs / "proxy-keyless.log") as proxy:
        yield proxy


@pytest.fixture
def browser():
    with headless_chromium(f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1") as driver:
        yield driver


@contextmanager
def attacker_site(page: str):
    """A site serving ``page`` at its root, on a port of this machine."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def chats_answered(proxy: ProxyProcess) -> list:
    """The statuses the proxy's access log gives chat completions."""
    return [
        line.split()[-4] for line in proxy.log().splitlines() if "POST /v1/chat/completions" in line
    ]


def test_a_cross_site_post_runs_no_generation(keyless, browser):
    before = len(chats_answered(keyless))
    with attacker_site(PAGE % {"proxy": keyless.port, "chat": CHAT}) as port:
        browser.get(f"http://{ATTACKER}:{port}/")
        WebDriverWait(browser, 10).until(lambda b: b.title == "posted")
    wait_for(lambda: len(chats_answered(keyless)) > before, "the page's POST to arrive")
    assert chats_answered(keyless)[before:] == ["403"]


def test_a_rebound_name_reads_nothing(keyless, browser):
    """The page's name now resolves to the proxy: its own-origin requests reach it, and
    are refused."""
    browser.get(f"http://{ATTACKER}:{keyless.port}/status")
    assert "origin_not_allowed" in browser.page_source and '"models"' not in browser.page_source
    answer = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/v1/chat/completions', {method: 'POST', body: arguments[0]})"
        ".then(r => done(r.status), e => done(String(e)));",
        CHAT,
    )
    assert answer == 403


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Host": f"{ATTACKER}:8081"}, "a rebound name"),
        ({"Origin": f"https://{ATTACKER}", "Content-Type": "text/plain"}, "a cross-site page"),
        ({"Origin": "null", "Content-Type": "text/plain"}, "a sandboxed frame"),
    ],
)
def test_each_browser_probe_is_refused_at_once(keyless, headers, why):
    answer, cost = measured(
        keyless.process.pid,
        lambda: requests.post(
            keyless.url + "/v1/chat/completions", data=CHAT, headers=headers, timeout=10
        ),
    )
    assert answer.status_code == 403, why
    assert answer.json()["error"]["code"] == "origin_not_allowed"
    assert cost.growth < 64 * MiB and cost.cpu < 1, cost


def test_the_pages_cannot_be_framed_or_sniffed(keyless):
    for path in ("/", "/playground"):
        page = requests.get(keyless.url + path, headers={"Accept": "text/html"}, timeout=10)
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
