"""A Messages body passed through to an ``anthropic`` upstream (a current llama-server's own
``/v1/messages``) runs there only the server tools its key is granted: a key without the
web's grant asking for ``web_search_20250305`` is refused before the upstream sees anything,
through the ``anthropic`` SDK; a key with it has its body reach the upstream."""

from __future__ import annotations

import anthropic
import pytest
import requests

from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEYS = """
[[keys]]
name = "plain"
key = "sk-plain-1"

[[keys]]
name = "searcher"
key = "sk-searcher-2"
tools = ["web"]
"""
MODELS = """
[models.claude]
backend = "anthropic"
upstreams = ["{url}"]
price = {{ input = 1, output = 2, web_search = 10 }}
"""
SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}


@pytest.fixture(scope="module")
def served(model, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("passthrough-grants")
    (folder / "keys.toml").write_text(KEYS)
    with LlamaServer(
        model, logs / "passthrough-grants-server.log", parallel=1, extra_args=["--metrics"]
    ) as server:
        (folder / "models.toml").write_text(MODELS.format(url=server.url))
        args = ["--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml")]
        with ProxyProcess(server.url, logs / "proxy-passthrough-grants.log", args=args) as proxy:
            proxy.server = server
            yield proxy


def asked_of_server(server: LlamaServer) -> float:
    """The requests llama-server has taken a prompt of (its own ``/metrics``)."""
    text = requests.get(server.url + "/metrics", timeout=30).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("llamacpp:prompt_tokens_total")
    )


def ask(proxy: ProxyProcess, key: str):
    return proxy.anthropic(api_key=key).messages.create(
        model="claude",
        max_tokens=8,
        messages=[{"role": "user", "content": "Search the web for llamas."}],
        tools=[SEARCH],
    )


def test_a_server_tool_the_key_is_not_granted_never_reaches_the_upstream(served):
    before = asked_of_server(served.server)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ask(served, "sk-plain-1")
    error = refused.value.body["error"]
    assert error["type"] == "permission_error"
    assert "this key may not have the tools of 'web' run" in error["message"]
    assert asked_of_server(served.server) == before


def test_a_granted_server_tool_reaches_the_upstream_which_answers(served):
    """llama-server reads no server tool: it answers the question (what it does with the
    tool is its own; the body it got is the client's, as the unit tier's echo shows)."""
    before = asked_of_server(served.server)
    answer = ask(served, "sk-searcher-2")
    assert answer.type == "message" and answer.usage.output_tokens >= 1
    assert answer.stop_reason == "max_tokens"
    assert asked_of_server(served.server) > before
