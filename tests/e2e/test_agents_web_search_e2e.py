"""Codex CLI with its web search on, as it is by default: the gateway runs the search it
asks for through a SearXNG stand-in on loopback (``[web_search]``), the model reads what it
found, and Codex prints the model's answer. The ``openai`` package's chat completions ask
for the same search with ``web_search_options``, and read the page the answer cites.

The model (see :mod:`.scriptedmodel`, gpt-oss's real template, on current llama-server)
first calls ``web_search``, which Codex offers as OpenAI's hosted tool; once a tool's result
is in its prompt it answers and stops.
"""

from __future__ import annotations

import json

import pytest
import requests
from openai import OpenAI

from tests.processes import ADMIN, ProxyProcess
from tests.searxng import SearXNG

from . import agents
from .agent_tools import CONTEXT, family, gpt_oss_call
from .llama_server import LlamaServer
from .scriptedmodel import Script, write_scripted_gguf

pytestmark = pytest.mark.e2e

KEY = "sk-agent"
QUERY = "llama facts"
CITED = "https://en.wikipedia.org/wiki/Llama"  # a hit the stand-in gives for any query
ANSWER = f"Llamas hum to one another, says {CITED} today."


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs):
    folder = tmp_path_factory.mktemp("web-search")
    gpt_oss = family("gpt-oss")
    model = write_scripted_gguf(
        folder / "gpt-oss-search.gguf",
        [
            Script(gpt_oss_call("web_search", {"query": QUERY})),
            Script(f"<|channel|>final<|message|>{ANSWER}", trigger=" to=assistant"),
        ],
        gpt_oss.tokens,
        gpt_oss.chat_template(),
        name="gpt-oss",
    )
    with (
        SearXNG() as searxng,
        LlamaServer(model, logs / "web-search-llama.log", parallel=1, ctx_size=CONTEXT) as server,
    ):
        (folder / "models.toml").write_text(f"""
[web_search]
searxng = "{searxng.url}"
max_results = 3

[models.local-model]
upstreams = ["{server.url}"]
""")
        with ProxyProcess(
            server.url,
            logs / "proxy-web-search.log",
            args=[
                *("--config", str(folder / "models.toml")),
                *("--api-key", KEY, "--upstream-timeout", "600", "--capture", "on"),
            ],
        ) as proxy:
            yield proxy, searxng


def test_codex_with_web_search_on_reads_what_the_gateways_search_found(served, tmp_path):
    proxy, searxng = served
    result = agents.codex(proxy.url, KEY, tmp_path, "What do llamas do?", web_search=True)
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert ANSWER in result.stdout
    assert searxng.queries == [QUERY]
    (exchange,) = [exchange for exchange in proxy.exchanges() if exchange.get("tool_runs")]
    (run,) = exchange["tool_runs"]
    assert (run["server"], run["tool"], json.loads(run["arguments"])) == (
        "web",
        "web_search",
        {"query": QUERY},
    )
    assert "Llamas of the Andes" in run["output"] and run["error"] == ""
    metrics = requests.get(
        f"{proxy.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    ).text
    assert 'oai_proxy_tool_calls_total{server="web",tool="web_search"} 1.0' in metrics
    assert "Traceback" not in proxy.log()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_openai_sdks_chat_with_web_search_options_cites_the_page_found(served, stream):
    proxy, searxng = served
    searched = len(searxng.queries)
    asked = {
        "model": "local-model",
        "messages": [{"role": "user", "content": "What do llamas do?"}],
        "web_search_options": {},
    }
    # closed when done: a client left to the garbage collector leaves its socket open
    with OpenAI(base_url=proxy.url + "/v1", api_key=KEY, max_retries=0) as client:
        if stream:
            chunks = list(client.chat.completions.create(**asked, stream=True))
        else:
            message = client.chat.completions.create(**asked).choices[0].message
    if stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        (cited,) = [
            chunk.choices[0].delta.model_extra["annotations"]
            for chunk in chunks
            if chunk.choices and "annotations" in (chunk.choices[0].delta.model_extra or {})
        ]
    else:
        text, cited = message.content, [a.model_dump() for a in message.annotations]
    assert text == ANSWER
    assert searxng.queries[searched:] == [QUERY]
    (citation,) = [c["url_citation"] for c in cited]
    assert citation["url"] == CITED and citation["title"] == "Llama - Wikipedia"
    assert text[citation["start_index"] : citation["end_index"]] == CITED
