"""llama-server's own extensions of OpenAI's API reach it through the proxy and come back as
it wrote them: a top-level ``json_schema`` and a ``json_object`` with a ``schema`` constrain
the answer (a schema one string alone satisfies), whole and streamed; ``return_progress``
streams the prompt's progress before the first token; ``timings_per_token`` gives each
piece its timings; ``verbose`` its ``__verbose``; chat completions and completions alike.
An old generation refuses by name a field it does not read, and takes the few it does."""

from __future__ import annotations

import json

import pytest
import requests

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import CURRENT, OLD, only
from .smollm2 import smollm2

pytestmark = [pytest.mark.e2e]
ONE_STRING = {"type": "string", "enum": ["blue-whale"]}  # the answer may be this alone
QUESTION = [{"role": "user", "content": "What is the largest animal?"}]


@pytest.fixture(scope="module")
def proxy(kind, logs, model):
    """The proxy before SmolLM2 on current llama-server, the tiny model on an old one (which
    cannot load SmolLM2)."""
    served = smollm2() if kind == CURRENT else model
    with (
        LlamaServer(
            served, logs / f"extensions-{kind}.log", kind=kind, parallel=1, ctx_size=2048
        ) as server,
        ProxyProcess(server.url, logs / f"proxy-extensions-{kind}.log") as proxy,
    ):
        yield proxy


def ask(proxy, path: str, body: dict) -> requests.Response:
    return requests.post(
        proxy.url + path, json={"max_tokens": 24, "temperature": 0, **body}, timeout=120,
        stream=bool(body.get("stream")),
    )  # fmt: skip


def events(reply: requests.Response) -> list:
    assert reply.status_code == 200, reply.text
    with reply:
        return [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith(b"data: {")]


def said(events_: list) -> str:
    return "".join(
        (c.get("delta") or {}).get("content") or c.get("text") or ""
        for e in events_
        for c in e.get("choices") or ()
    )


CONSTRAINTS = {
    "json_schema": {"json_schema": ONE_STRING},
    "json_object with a schema": {"response_format": {"type": "json_object", "schema": ONE_STRING}},
}


@only(CURRENT, why="llama-server's own fields: the old generations read none of these")
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("constraint", CONSTRAINTS.values(), ids=CONSTRAINTS.keys())
def test_a_schema_of_llama_servers_constrains_the_answer(proxy, constraint, stream):
    reply = ask(proxy, "/v1/chat/completions",
                {"messages": QUESTION, "stream": stream, **constraint})  # fmt: skip
    text = said(events(reply)) if stream else reply.json()["choices"][0]["message"]["content"]
    assert json.loads(text) == "blue-whale"


@only(CURRENT, why="llama-server's own fields: the old generations read none of these")
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_the_prompts_progress_streams_before_the_first_token_and_timings_with_each(proxy, path):
    asked = {"messages": QUESTION} if "chat" in path else {"prompt": "The largest animal is"}
    got = events(ask(proxy, path, {**asked, "stream": True, "return_progress": True,
                                   "timings_per_token": True}))  # fmt: skip
    first = next(i for i, e in enumerate(got) if said([e]))
    progress = [e["prompt_progress"] for e in got[:first] if "prompt_progress" in e]
    assert progress and progress[-1]["processed"] == progress[-1]["total"] > 0
    pieces = [e for e in got[first:] if said([e])]
    assert pieces and all(e["timings"]["predicted_n"] >= 1 for e in pieces)
    assert not any("prompt_progress" in e for e in got[first:])
    plain = events(ask(proxy, path, {**asked, "stream": True}))  # not asked: not told
    assert not any("prompt_progress" in e for e in plain)
    assert not any("timings" in e for e in plain[:-1] if said([e]))


@only(CURRENT, why="llama-server's own fields: the old generations read none of these")
def test_a_whole_answer_carries_the_servers_timings_and_verbose_fields(proxy):
    answer = ask(proxy, "/v1/chat/completions", {"messages": QUESTION, "verbose": True}).json()
    assert answer["timings"]["predicted_n"] == answer["usage"]["completion_tokens"]
    assert answer["system_fingerprint"] and "__verbose" in answer
    assert answer["model"] != answer["__verbose"].get("model")  # the proxy's name stays


@only(*OLD, why="what each old generation reads differs from the current one's")
def test_an_old_generation_refuses_what_it_does_not_read_and_takes_what_it_does(proxy):
    refused = ask(proxy, "/v1/chat/completions", {"messages": QUESTION, "json_schema": ONE_STRING})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "json_schema"
    taken = ask(proxy, "/v1/chat/completions",
                {"messages": QUESTION, "typical_p": 0.9, "repeat_last_n": 32})  # fmt: skip
    assert taken.status_code == 200, taken.text
    mistyped = ask(proxy, "/v1/chat/completions", {"messages": QUESTION, "typical_p": "high"})
    assert mistyped.status_code == 400 and mistyped.json()["error"]["param"] == "typical_p"
