"""The upstream client over real HTTP: pooled keep-alive, stale connections, prefixes, probes."""

from __future__ import annotations

import json
import ssl

import pytest

from proxy.backends.wire.chunked import BrokenChunks
from proxy.backends.wire.client import MissingRoute, UpstreamClient, broken, probe_ready
from proxy.core.errors import (
    InvalidRequestError,
    NotImplementedByBackendError,
    SlotUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from tests.fakes.canned import CannedServer
from tests.processes import free_port


@pytest.fixture
def upstream():
    with CannedServer() as server:
        yield server


@pytest.fixture
def client(upstream):
    client = UpstreamClient(upstream.url)
    yield client
    client.close()


def test_requests_share_one_kept_alive_connection(upstream, client):
    upstream.post("/completion", json_body={"content": "hi"})
    answers = [client.post_json("/completion", {"prompt": str(i)}) for i in range(3)]
    assert answers == [{"content": "hi"}] * 3
    assert len({call.peer for call in upstream.calls}) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(upstream, client):
    upstream.post("/completion", json_body={"content": "hi"})
    client.post_json("/completion", {"prompt": "one"})
    upstream.hang_up()
    assert client.post_json("/completion", {"prompt": "two"}) == {"content": "hi"}
    assert len({call.peer for call in upstream.calls}) == 2


def test_a_server_under_a_path_is_reached_under_it(upstream):
    upstream.get("/llama/health", json_body={"status": "ok"})
    client = UpstreamClient(upstream.url + "/llama/")
    assert client.get("/health").json() == {"status": "ok"}
    client.close()


def test_what_orjson_cannot_write_is_still_sent():
    with CannedServer() as upstream:
        upstream.post("/completion", json_body={"content": ""})
        client = UpstreamClient(upstream.url)
        client.post_json("/completion", {"seed": 2**70, "prompt": "é"})
        client.close()
    assert json.loads(upstream.calls[0].body) == {"seed": 2**70, "prompt": "é"}


@pytest.mark.parametrize(
    "chunks", [0, 1, 7, 100], ids=["length", "one-chunk", "7-chunks", "100-chunks"]
)
def test_streams_arrive_whole_and_their_connection_is_not_reused(upstream, client, chunks):
    events = b"".join(b'data: {"content":"%d"}\n\n' % i for i in range(100))
    upstream.post(
        "/completion", body=events.decode(), content_type="text/event-stream", chunks=chunks
    )
    for _ in range(2):
        with client.stream("/completion", {"stream": True}) as lines:
            assert b"".join(line + b"\n" for batch in lines for line in batch) == events
    assert len({call.peer for call in upstream.calls}) == 2


def test_a_slow_answer_is_a_timeout(upstream):
    upstream.get("/props", json_body={}, delay=1.0)
    client = UpstreamClient(upstream.url)
    with pytest.raises(UpstreamTimeoutError):
        client.get("/props", timeout=0.2)
    client.close()


def test_nothing_listening_is_unreachable():
    client = UpstreamClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UpstreamUnavailableError) as info:
        client.post_json("/completion", {})
    assert info.value.code == "upstream_unreachable"


@pytest.mark.parametrize("status, ready", [(200, True), (404, True), (503, False)])
def test_probe_ready_reads_health(upstream, status, ready):
    upstream.get("/health", status=status, body="{}")
    assert probe_ready(upstream.url) is ready


def test_probe_ready_is_none_while_nothing_listens():
    assert probe_ready(f"http://127.0.0.1:{free_port()}") is None


NOT_SUPPORTED = {"error": {"code": 501, "message": "no embeddings", "type": "not_supported_error"}}
MODEL_NOT_FOUND = {"error": {"message": "no such model", "code": "model_not_found"}}
BAD = {"error": {"message": "bad", "type": "invalid_request_error"}}


@pytest.mark.parametrize(
    ("public_api", "status", "body", "error"),
    [
        # an old server.cpp answers a request with no free slot 404 File Not Found
        (False, 404, None, SlotUnavailableError),
        (False, 501, NOT_SUPPORTED, NotImplementedByBackendError),
        # a server of a public API says it lacks the route
        (True, 404, None, MissingRoute),
        (True, 405, {"detail": "Method Not Allowed"}, MissingRoute),
        (True, 501, NOT_SUPPORTED, MissingRoute),
        # ... or something else
        (True, 404, MODEL_NOT_FOUND, UpstreamError),
        (True, 400, BAD, InvalidRequestError),
    ],
)
def test_what_an_error_status_means_depends_on_the_servers_api(
    upstream, public_api, status, body, error
):
    if body is not None:  # else unarmed: 404 File Not Found, as llama.cpp's servers say it
        upstream.post("/embeddings", status=status, json_body=body)
    client = UpstreamClient(upstream.url, label="the server of model 'big'", public_api=public_api)
    with pytest.raises(error) as whole:
        client.post_json("/embeddings", {})
    with pytest.raises(error) as streamed:
        with client.stream("/embeddings", {}):
            pass
    client.close()
    assert type(whole.value) is error and type(streamed.value) is error
    if error is MissingRoute:
        assert whole.value.path == "/embeddings"
        assert whole.value.message.startswith(
            f"the server of model 'big' has no /embeddings (it answered {status}: "
        )


@pytest.mark.parametrize(
    "exc, says",
    [
        (BrokenChunks("the body ended before its last chunk"), "the body ended before its last"),
        (ConnectionResetError(104, "Connection reset by peer"), "the server reset the connection"),
        (BrokenPipeError(), "the server closed the connection mid-answer"),
        (ssl.SSLError(), "the TLS session broke"),
        (OSError(113, "No route to host"), "the connection broke"),
    ],
)
def test_what_broke_an_exchange_is_said_in_words(exc, says):
    told = broken(exc)
    assert told.startswith(says)
    assert type(exc).__name__ not in told
