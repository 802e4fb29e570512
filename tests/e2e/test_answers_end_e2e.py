"""An answer whose request sets no length ends by itself within its server's context, on every
generation of server.cpp, and a key with a budget holds that bound while it runs.

The tiny model never stops of itself, and every server here shifts its context when it fills
(the old ones always, current llama-server as started with ``--context-shift``): told no
bound, its answer would run for ever. Through OpenAI's chat and completions and Ollama's chat,
whole and streamed, each answer ends at the length the proxy told the server
(:mod:`proxy.backends.servercpp.budget`): within the context, and on an old server without a
single shift of it (what its log would say).
"""

from __future__ import annotations

import json

import pytest
import requests

from proxy.access.holds import AROUND_MESSAGE, AROUND_REQUEST
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import OLD

pytestmark = pytest.mark.e2e

CONTEXT = 512  # tokens of the server's one slot
ASKED = "Tell me a story."
HI = [{"role": "user", "content": ASKED}]
# what a chat of ASKED without a length holds: its prompt's bound and the context
BOUND = AROUND_REQUEST + AROUND_MESSAGE + len(ASKED) + CONTEXT
KEYS = f"""
[[keys]]
name = "team"
key = "sk-team"
tokens_per_day = 100000

[[keys]]
name = "short"
key = "sk-short"
tokens_per_day = {BOUND - 1}
"""
SHIFT = "context shift"  # what each generation logs as it shifts a slot's context
DEADLINE = 120  # seconds: only a hang takes this long


@pytest.fixture(scope="module")
def served(kind, model, logs, tmp_path_factory):
    """One server of ``kind`` (one slot of :data:`CONTEXT` tokens, shifting it when it
    fills) and the proxy in front of it, with keys that have budgets."""
    folder = tmp_path_factory.mktemp(f"answers-end-{kind}")
    (folder / "keys.toml").write_text(KEYS)
    log = logs / f"answers-end-{kind}.log"
    with LlamaServer(
        model, log, kind=kind, parallel=1, ctx_size=CONTEXT, context_shift=True
    ) as server:
        (folder / "models.toml").write_text(f'[models.tiny]\nupstreams = ["{server.url}"]\n')
        args = ["--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml")]
        with ProxyProcess(server.url, logs / f"proxy-answers-end-{kind}.log", args=args) as proxy:
            yield proxy, server


def ask(proxy: ProxyProcess, api: str, stream: bool, key: str = "sk-team") -> requests.Response:
    """A request of ``api`` that sets no length, greedy, with ``key``."""
    path, body = {
        "chat": ("/v1/chat/completions", {"messages": HI}),
        "completions": ("/v1/completions", {"prompt": ASKED}),
        "ollama": ("/api/chat", {"messages": HI, "options": {"temperature": 0}}),
    }[api]
    body = {**body, "model": "tiny", "stream": stream}
    if api != "ollama":
        body["temperature"] = 0
        if stream:
            body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {key}"}
    return requests.post(
        proxy.url + path, json=body, headers=headers, stream=stream, timeout=DEADLINE
    )


def ending(api: str, answer: requests.Response, stream: bool) -> tuple:
    """``(finish reason, prompt tokens, answer tokens)`` of an answer in ``api``'s words."""
    assert answer.status_code == 200, answer.text
    if api == "ollama":
        lines = answer.iter_lines() if stream else [answer.content]
        last = json.loads([line for line in lines if line][-1])
        assert last["done"] is True
        return last["done_reason"], last["prompt_eval_count"], last["eval_count"]
    if not stream:
        body = answer.json()
        usage = body["usage"]
        return (
            body["choices"][0]["finish_reason"],
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
    events = [line[len(b"data: ") :] for line in answer.iter_lines() if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    usage = chunks[-1]["usage"]
    return finish[-1], usage["prompt_tokens"], usage["completion_tokens"]


def shifts(server: LlamaServer) -> int:
    return server.log_path.read_text(errors="replace").count(SHIFT)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "completions", "ollama"])
def test_an_answer_that_sets_no_length_ends_within_the_context(served, kind, api, stream):
    proxy, server = served
    before = shifts(server)
    with ask(proxy, api, stream) as answer:
        reason, prompt, written = ending(api, answer, stream)
    assert reason == "length" and 0 < written <= CONTEXT
    if kind in OLD:  # told what the prompt leaves of the slot: never shifted
        assert prompt + written < CONTEXT and shifts(server) == before
    else:  # told the context: it shifts once at the most
        assert shifts(server) <= before + 1


def test_a_key_with_a_budget_holds_the_bound_its_answer_is_told(served):
    """What a request that sets no length holds: its prompt's bound and the context the server
    told the proxy, which its answer stays within; a key with less left is refused, naming
    what the request would hold."""
    proxy, _ = served
    with ask(proxy, "chat", stream=False) as answer:
        _, prompt, written = ending("chat", answer, stream=False)
    assert prompt + written <= BOUND
    refused = ask(proxy, "chat", stream=False, key="sk-short")
    assert refused.status_code == 429
    assert (
        f"this request may take {BOUND} tokens (a prompt of at most {BOUND - CONTEXT} tokens "
        f"and an answer of at most {CONTEXT} tokens)"
    ) in refused.json()["error"]["message"]
