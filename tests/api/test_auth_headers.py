"""API keys through the real HTTP servers: the header bytes as a client sends them."""

from __future__ import annotations

import http.client

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

KEY = b"live-key"


@pytest.fixture(scope="module", params=["waitress", "gunicorn", "granian", "wsgi"])
def proxy(request, tmp_path_factory):
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(
            fake.url,
            log,
            how=request.param,
            args=() if request.param == "wsgi" else ("--api-key", KEY.decode()),
            env={"PROXY_API_KEY": KEY.decode()},
        ) as process,
    ):
        yield process


def status(proxy: ProxyProcess, authorization: bytes) -> int:
    """GET /v1/models with this Authorization value, sent byte for byte."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.putrequest("GET", "/v1/models")
        connection.putheader("Authorization", authorization)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(
    "value",
    [b"Bearer " + KEY, b"bearer " + KEY, b"Bearer " + KEY + b" ", b"Bearer " + KEY + b"\t"],
    ids=["plain", "scheme-in-any-case", "trailing-space", "trailing-tab"],
)
def test_the_key_as_http_allows_it(proxy, value):
    assert status(proxy, value) == 200


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer  " + KEY,
        b"Bearer " + KEY + "\u00a0".encode(),
        b"Bearer " + KEY + b"\xa0",
        b"Bearer " + KEY + "\u2003".encode(),
        b"Bearer " + KEY + b"x",
        b"Bearer " + KEY[:-1],
        b"Token " + KEY,
        KEY,
    ],
    ids=[
        "two-spaces",
        "utf8-nbsp",
        "latin1-nbsp",
        "em-space",
        "longer",
        "shorter",
        "other-scheme",
        "no-scheme",
    ],
)
def test_anything_else_is_401(proxy, value):
    assert status(proxy, value) == 401
