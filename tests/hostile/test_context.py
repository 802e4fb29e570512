"""Work a client cannot make the servers do: a prompt far beyond the model's context is
refused at once, in each client API's own words, and a client that leaves stops the
server's work for it, on current llama-server and on PowerInfer's server."""

from __future__ import annotations

import json
import re
import socket

import psutil
import pytest
import requests

from tests.e2e.llama_server import LlamaServer
from tests.e2e.tinymodel import EOS_ID, SMALL, write_tiny_llama_gguf
from tests.polling import wait_for
from tests.processes import ProxyProcess

from .conftest import ALICE
from .cost import MiB, measured

pytestmark = pytest.mark.hostile

HUGE = "the cat sat on the mat and looked at the dog " * 70_000  # 3 MiB of text
AUTH = {"Authorization": f"Bearer {ALICE}"}
# the fewest tokens the busy server's slot holds when the generation below runs to its end:
# current llama-server's context is full (the model's 2048), PowerInfer's 3000 are made
RUN_OUT = 2047
RELEASED = re.compile(  # the tokens a slot held when the server let it go
    r"stop processing: n_tokens = (\d+)"  # current llama-server
    r"|slot \d+ released \((\d+) tokens in cache\)"  # PowerInfer's
)
# (path, body, what the client's own API says of a prompt too long)
TOO_LONG = [
    (
        "/v1/chat/completions",
        {"model": "tiny", "messages": [{"role": "user", "content": HUGE}], "max_tokens": 4},
        lambda body: body["error"]["code"] == "context_length_exceeded",
    ),
    (
        "/v1/completions",
        {"model": "tiny", "prompt": HUGE, "max_tokens": 4},
        lambda body: body["error"]["code"] == "context_length_exceeded",
    ),
    (
        "/v1/messages",
        {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": HUGE}]},
        lambda body: body["error"]["message"].startswith("prompt is too long: "),
    ),
    (
        "/v1/responses",
        {"model": "tiny", "input": HUGE, "max_output_tokens": 16},
        lambda body: body["error"]["code"] == "context_length_exceeded",
    ),
    (
        "/api/chat",
        {"model": "tiny", "stream": False, "messages": [{"role": "user", "content": HUGE}]},
        lambda body: "maximum context length" in body["error"],
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("path", "body", "worded"), TOO_LONG, ids=[path for path, _, _ in TOO_LONG]
)
def test_a_prompt_far_beyond_the_context_is_refused_at_once(gateway, path, body, worded, stream):
    """By the proxy, for little of its processor time and next to none of the server's:
    tokenizing the prompt would take the server most of a second of it."""
    body = {**body, "stream": stream}
    (answer, cost), server = measured(
        gateway.server.proc.pid,
        lambda: measured(
            gateway.pid,
            lambda: requests.post(gateway.url + path, json=body, headers=AUTH, timeout=60),
        ),
    )
    assert answer.status_code == 400 and worded(answer.json()), answer.text[:300]
    assert cost.growth < 64 * MiB and cost.cpu < 1, cost
    assert server.cpu < 0.1, f"the server worked on it: {server}"


@pytest.fixture(scope="module", params=["llamacpp", "powerinfer"])
def busy(request, tmp_path_factory, logs):
    """A model slow enough to keep its server busy for seconds (the tiny model's shape is too
    quick), behind a keyless proxy."""
    model = write_tiny_llama_gguf(tmp_path_factory.mktemp("small") / "small.gguf", SMALL)
    with (
        LlamaServer(
            model,
            logs / f"busy-{request.param}.log",
            kind=request.param,
            parallel=1,
            ctx_size=4096,
            threads=1,
        ) as server,
        ProxyProcess(server.url, logs / f"proxy-busy-{request.param}.log") as proxy,
    ):
        yield server, proxy


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def released(server: LlamaServer) -> list:
    """The tokens the server's slot held each time it let it go, as its log says."""
    found = RELEASED.findall(server.log_path.read_text(errors="replace"))
    return [int(current or powerinfer) for current, powerinfer in found]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_client_that_leaves_stops_the_servers_work(busy, stream):
    """The server lets the slot go holding less than half of what the generation leaves in
    it run to its end: only its client's leaving ends it early (the end of text is barred)."""
    server, proxy = busy
    before = len(released(server))
    body = json.dumps(
        {
            "messages": [{"role": "user", "content": "tell me everything"}],
            "max_tokens": 3000,
            "stream": stream,
            "temperature": 0,
            "logit_bias": {str(EOS_ID): -100},
        }
    ).encode()  # no end before the limit
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        began = cpu_seconds(server.proc.pid)
        wait_for(lambda: cpu_seconds(server.proc.pid) - began > 0.5, "the server to generate", 30)
    # the proxy looks at its client four times a second, and closes the upstream when it left
    wait_for(lambda: len(released(server)) > before, "the server to let the slot go", 60)
    held = released(server)[before]
    assert held < RUN_OUT / 2, f"the slot held {held} tokens: the generation went on"
