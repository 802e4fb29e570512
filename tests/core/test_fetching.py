"""One GET of a URL a client or a model names, over real sockets on the loopback: made to the
address checked under the host's own name, within one deadline however a server drips, at
most its bytes read (and a call's together), and its redirects followed as far as the caller
allows, each checked as the first URL was."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from proxy.core.fetching import (
    Deadline,
    Got,
    NotPublic,
    NotWeb,
    TimedOut,
    TooLarge,
    Unanswered,
    WithCredentials,
    fetch,
    get,
)
from tests.processes import free_port

NOTES = b"Release notes.\n"
BIG = bytes(range(256)) * 40  # 10,240 bytes
ROUTES = {
    "/notes.txt": (200, NOTES),
    "/big.bin": (200, BIG),
    "/drip": (200, NOTES * 100),
    "/gone.txt": (404, b""),
}
REDIRECTS = {"/moved": "/notes.txt", "/loop": "/loop"}


class _Site(BaseHTTPRequestHandler):
    """The routes above, ``/drip`` a byte every 0.1 s (never a pause to time out on); the
    redirects above, and ``/away?to=URL`` to ``URL``."""

    asked: list = []  # (path, Host header) of each request, in order

    def do_GET(self):
        url = urlsplit(self.path)
        self.asked.append((url.path, self.headers["Host"]))
        where = parse_qs(url.query)["to"][0] if url.path == "/away" else REDIRECTS.get(url.path)
        status, body = (302, b"") if where else ROUTES.get(url.path, (404, b""))
        self.send_response(status)
        if where:
            self.send_header("Location", where)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if url.path == "/drip":
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.wfile.write(body)
        except OSError:  # the fetch hung up
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fetched(url: str, most: int = 1 << 20, **allowed) -> Got:
    with Deadline(5) as deadline:
        return fetch(url, deadline, most, {}, policy="any", **allowed)


def test_a_get_connects_to_the_address_given_under_the_hosts_own_name(site):
    """The name need not resolve: the connection goes to the address checked before."""
    port = urlsplit(site).port
    with Deadline(5) as deadline:
        got = get(urlsplit(f"http://pages.invalid:{port}/notes.txt"), "127.0.0.1", deadline, 64, {})
    assert (got.status, got.body, got.cut) == (200, NOTES, False)
    assert _Site.asked[-1] == ("/notes.txt", f"pages.invalid:{port}")


@pytest.mark.parametrize(
    "path, most, got",
    [
        ("/notes.txt", 1024, Got(200, "text/plain", body=NOTES)),
        ("/notes.txt", len(NOTES), Got(200, "text/plain", body=NOTES)),
        ("/notes.txt", 7, Got(200, "text/plain", body=NOTES[:7], cut=True)),
        ("/big.bin", 100_000, Got(200, "text/plain", body=BIG)),
        ("/big.bin", 5000, Got(200, "text/plain", body=BIG[:5000], cut=True)),
        ("/gone.txt", 1024, Got(404, "text/plain")),  # only a 200's body is read
    ],
)
def test_a_get_reads_at_most_its_bytes_and_says_when_it_cut(site, path, most, got):
    assert fetched(site + path, most) == Got(
        got.status, got.content_type, body=got.body, cut=got.cut, url=site + path
    )


def test_the_gets_of_a_call_read_at_most_its_bytes_together(site):
    with Deadline(5, most=len(NOTES) * 2 - 1) as deadline:
        assert fetch(site + "/notes.txt", deadline, 1024, {}, policy="any").body == NOTES
        with pytest.raises(TooLarge):
            fetch(site + "/notes.txt", deadline, 1024, {}, policy="any")


def test_a_server_that_drips_ends_at_the_deadline_however_steady(site):
    with Deadline(1) as deadline:
        with pytest.raises(TimedOut) as late:
            fetch(site + "/drip", deadline, 1 << 20, {}, policy="any")
    assert (late.value.url, late.value.host) == (site + "/drip", "127.0.0.1")


def test_a_host_that_does_not_answer_is_unanswered():
    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(Unanswered) as unanswered:
        fetched(url)
    assert unanswered.value.url == url


@pytest.mark.parametrize(
    "host, addresses",
    [("lan.example", ["192.168.1.2"]), ("split.example", ["8.8.8.8", "10.0.0.1"]), ("gone", [])],
)
def test_under_public_a_host_off_the_internet_is_not_asked(host, addresses):
    def resolve(name: str) -> list:
        if not addresses:
            raise OSError("no such host")
        return addresses

    before = len(_Site.asked)
    with Deadline(5) as deadline, pytest.raises(NotPublic) as refused:
        fetch(f"http://{host}/a", deadline, 1024, {}, resolve=resolve)
    assert refused.value.host == host
    assert len(_Site.asked) == before


@pytest.mark.parametrize(
    "path, redirects, status, ended, asks",
    [
        ("/moved", 0, 302, "/moved", 1),  # a caller that follows none gets the redirect
        ("/moved", 1, 200, "/notes.txt", 2),
        ("/moved", 3, 200, "/notes.txt", 2),
        ("/loop", 3, 302, "/loop", 4),  # one past those followed: what it got
        ("/away?to=notes.txt", 1, 200, "/notes.txt", 2),  # relative to where it came from
    ],
)
def test_redirects_are_followed_as_far_as_the_caller_allows(
    site, path, redirects, status, ended, asks
):
    before = len(_Site.asked)
    got = fetched(site + path, redirects=redirects)
    assert (got.status, got.url) == (status, site + ended)
    assert len(_Site.asked) - before == asks


@pytest.mark.parametrize(
    "to, credentials, refusal",
    [
        ("file:///etc/passwd", True, NotWeb),
        ("https://", True, NotWeb),
        ("http://[::1", True, NotWeb),  # malformed: no URL at all
        ("http://me:pw@{host}/notes.txt", False, WithCredentials),
        ("http://me:pw@{host}/notes.txt", True, None),  # fetched; the credentials never sent
    ],
)
def test_a_redirect_is_checked_as_the_first_url_was(site, to, credentials, refusal):
    to = to.format(host=urlsplit(site).netloc)
    away = f"{site}/away?to={quote(to, safe='')}"
    if refusal is None:
        assert fetched(away, redirects=1, credentials=credentials).body == NOTES
        return
    with pytest.raises(refusal) as refused:
        fetched(away, redirects=1, credentials=credentials)
    assert refused.value.url == to


def test_without_credentials_the_first_url_is_checked_too(site):
    url = site.replace("//", "//me@") + "/notes.txt"
    before = len(_Site.asked)
    with pytest.raises(WithCredentials):
        fetched(url, credentials=False)
    assert len(_Site.asked) == before


def test_a_malformed_url_is_no_web_url(site):
    with pytest.raises(NotWeb) as refused:
        fetched("http://[::1")
    assert refused.value.host == ""
