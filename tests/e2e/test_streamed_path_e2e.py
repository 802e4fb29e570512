"""The streamed path is short and the architecture page names it: the proxy's frames on the
stack while a streamed chat waits on its upstream's socket, counted (as the import tests count
imports) on current llama-server's chat layer, and held to docs/architecture.md's table of the
streamed path, layer for layer."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from proxy.app import create_app
from proxy.backends.wire import connections
from proxy.config.modelsfile import parse_catalog
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.fleet.build import build_fleet
from tests.runtimes import NO_FILES

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROXY = str(ROOT / "proxy")
MOST = 8  # frames of the proxy's own between a token's bytes and the client's socket
PAGE = (ROOT / "docs" / "architecture.md").read_text()
READ = "Connection._receive (proxy/backends/wire/connections.py)"
ASKS = 5  # streamed chats asked before one is read while its body is written


def proxy_frames() -> list:
    """The proxy's frames on this thread's stack, outermost first, as ``function (path)``."""
    frame, found = sys._getframe(1), []
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(PROXY):
            path = Path(code.co_filename).relative_to(ROOT).as_posix()
            found.append(f"{code.co_qualname} ({path})")
        frame = frame.f_back
    return found[::-1]


@pytest.fixture(scope="module")
def streamed_path(model, logs, tmp_path_factory):
    """The deepest stack of the proxy's frames seen at a read of the upstream's socket while a
    streamed chat's body is written (the reads before its first byte, the view's, aside)."""
    with LlamaServer(model, logs / "streamed-path.log", parallel=1) as server:
        catalog = parse_catalog({"models": {"tiny": {"upstreams": [server.url]}}}, "test")
        with (
            build_fleet(Settings(), NO_FILES, catalog) as fleet,
            pytest.MonkeyPatch.context() as patch,
        ):
            runtime = Runtime(cache_dir=str(tmp_path_factory.mktemp("cache")), environ={})
            client = create_app(Settings(), runtime, backend=fleet).test_client()
            stacks: list = []
            receive = connections.Connection._receive

            def watched(self):  # the read itself is the path's last frame
                stacks.append([*proxy_frames(), READ])
                return receive(self)

            patch.setattr(connections.Connection, "_receive", watched)
            chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(ASKS):  # a server that wrote the whole answer before the first
                answer = client.post(  # event was read leaves no read to the body: ask again
                    "/v1/chat/completions",
                    json={**chat, "stream": True, "max_tokens": 32},
                    buffered=False,
                )
                stacks.clear()
                body = b"".join(answer.response)
                assert body.endswith(b"data: [DONE]\n\n") and b'"content"' in body
                if stacks:
                    break
            assert fleet.status()[0]["replicas"][0]["generation"] == "llamacpp"
            yield max(stacks, key=len)


def test_a_token_passes_through_few_frames(streamed_path):
    assert len(streamed_path) <= MOST, "\n".join(streamed_path)


def test_the_architecture_page_lists_every_frame_of_the_streamed_path(streamed_path):
    section = PAGE.split("### The streamed path, layer by layer", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` `([^`]+)` \|", section, re.M)
    assert [f"{name} (proxy/{path})" for path, name in listed] == streamed_path
