"""A stream its client cuts is charged what the server made up to the cut, on every
generation of server.cpp: at least the prompt and the tokens relayed, never more than the
prompt and the answer's bound, the same however the cut falls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEYS = """
[[keys]]
name = "team"
key = "sk-team"
"""
ADMIN = {"Authorization": "Bearer sk-admin"}
MAX_TOKENS = 200
CUTS = (3, 10, 25)  # content events read before each client hangs up
QUESTION = [{"role": "user", "content": "Tell me a long story."}]
AT_ONCE, CUT, RUNS = 8, 40, 20  # streams cut together, chunks read before each cut, runs


@pytest.fixture(scope="module")
def proxy(model, logs, kind, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cut-streams")
    (folder / "keys.toml").write_text(KEYS)
    args = ["--keys", str(folder / "keys.toml"), "--admin-key", "sk-admin"]
    with LlamaServer(model, logs / f"cut-{kind}.log", kind=kind, parallel=2) as server:
        with ProxyProcess(server.url, logs / f"proxy-cut-{kind}.log", args=args) as proxy:
            yield proxy


def charged(proxy: ProxyProcess) -> tuple:
    rows = requests.get(proxy.url + "/admin/usage", headers=ADMIN, timeout=30).json()["usage"]
    ours = [row for row in rows if row["key"] == "team"]
    return (
        sum(row["requests"] for row in ours),
        sum(row["prompt_tokens"] for row in ours),
        sum(row["completion_tokens"] for row in ours),
    )


def cut_after(proxy: ProxyProcess, events: int) -> int:
    """Stream a chat and hang up after ``events`` events of text; how many came."""
    body = {"model": "tiny", "max_tokens": MAX_TOKENS, "stream": True, "messages": QUESTION}
    relayed = 0
    with requests.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-team"},
        stream=True,
        timeout=120,
    ) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if (
                line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                relayed += 1
                if relayed == events:
                    break
    return relayed


def test_a_cut_stream_is_charged_what_was_made_up_to_the_cut(proxy):
    whole = requests.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "tiny", "max_tokens": 1, "messages": QUESTION},
        headers={"Authorization": "Bearer sk-team"},
        timeout=120,
    ).json()
    prompt = whole["usage"]["prompt_tokens"]
    before = charged(proxy)
    relayed = [cut_after(proxy, events) for events in CUTS]
    assert relayed == list(CUTS)  # the answers were longer than each cut
    wait_for(
        lambda: charged(proxy)[0] == before[0] + len(CUTS),
        "each cut stream counted as a request of its key",
        timeout=60,
    )
    _, prompts, tokens = (now - then for now, then in zip(charged(proxy), before, strict=True))
    assert prompts == prompt * len(CUTS)
    assert sum(CUTS) <= tokens <= MAX_TOKENS * len(CUTS)


def test_streams_cut_at_once_are_charged_what_was_made_in_every_run(proxy):
    """8 streams at once, each cut by its client after 40 chunks, 20 times: every run
    charges the prompts and at least the tokens relayed, never more than the answers'
    bound, whenever the server's own usage would have come."""
    prompt = requests.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "tiny", "max_tokens": 1, "messages": QUESTION},
        headers={"Authorization": "Bearer sk-team"},
        timeout=120,
    ).json()["usage"]["prompt_tokens"]
    charges = []
    with ThreadPoolExecutor(AT_ONCE) as pool:
        for _ in range(RUNS):
            before = charged(proxy)
            assert list(pool.map(cut_after, [proxy] * AT_ONCE, [CUT] * AT_ONCE)) == [CUT] * AT_ONCE
            wait_for(
                lambda before=before: charged(proxy)[0] == before[0] + AT_ONCE,
                "each cut stream counted as a request of its key",
                timeout=60,
            )
            after = charged(proxy)
            charges.append(tuple(now - then for now, then in zip(after, before, strict=True)))
    for requests_, prompts, tokens in charges:
        assert requests_ == AT_ONCE and prompts == prompt * AT_ONCE
        assert CUT * AT_ONCE <= tokens <= MAX_TOKENS * AT_ONCE, charges
