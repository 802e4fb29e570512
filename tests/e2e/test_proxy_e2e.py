"""The proxy as a process in front of real servers of every kind, through the openai SDK.

Each test runs against PowerInfer's server, llama.cpp's of 2023 and current llama-server
(the ``kind`` fixture), unless its ``only`` mark says why it cannot apply. Answers are
compared with what the server itself returns for the same prompt and settings (``POST
/completion`` straight to it), so these tests prove compatibility with the real upstream,
not just a translation that agrees with a mock. A chat's prompt is the model's own template
on current llama-server (its chat layer renders it), the historic one on the old servers
(which report no template).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any, Iterator, Optional

import jinja2
import openai
import pytest
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import only
from .tinymodel import CHAT_TEMPLATE, EOS_ID, token_id

pytestmark = pytest.mark.e2e

MODEL = "tiny"
API_KEY = "e2e-secret"
APIS = ("chat", "completion")
PROMPT = "the cat"  # what a completion request sends
USER = "hi"  # what a chat request's one user message says
HISTORIC_STOP = ["</s>"]
MAX_TOKENS = 16
DEADLINE = 20.0  # seconds a process gets to reach a state the test polls for

# A completion that runs until the client goes away: EOS suppressed, and the servers it is
# sent to shift their context instead of stopping when it is full.
ENDLESS = {
    "model": MODEL,
    "prompt": PROMPT,
    "max_tokens": 1_000_000,
    "temperature": 0,
    "stream": True,
    "logit_bias": {str(EOS_ID): -100},
}


def historic_prompt(user: str) -> str:
    """The prompt the historic template makes of one user message."""
    return (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant follows the given rules no matter what.\n"
        f"\nUSER: {user}\nASSISTANT:"
    )


def model_prompt(user: str) -> str:
    """The prompt the model's own template makes of one user message, rendered the Hugging
    Face way (llama-server renders it the same way)."""
    return (
        jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        .from_string(CHAT_TEMPLATE)
        .render(messages=[{"role": "user", "content": user}], add_generation_prompt=True)
    )


def upstream_prompt(server: LlamaServer, api: str, text: str) -> tuple[str, list]:
    """The prompt and stop words ``text`` comes to on ``server`` by default."""
    if api == "completion":
        return text, []
    if server.legacy:
        return historic_prompt(text), HISTORIC_STOP
    return model_prompt(text), []


def default_text(api: str) -> str:
    return USER if api == "chat" else PROMPT


# -- the server, spoken to directly ----------------------------------------------------------

# What the proxy sends unless told otherwise (its prompt cache default is each server's own).
PROXY_DEFAULTS = {"n_keep": -1}


def server_completion(server: LlamaServer, prompt: str, **fields: Any) -> dict:
    """POST /completion straight to the server; greedy unless ``fields`` say otherwise.

    An old server is read as the proxy reads it: its stream, not its whole answer (which
    leaves out probabilities and cuts characters into U+FFFD), and only ``n_predict`` of its
    tokens, one fewer than it generates (counted from its listed probabilities, so this
    holds for text whose every token is listed: anything but byte tokens).
    """
    body = {"prompt": prompt, "temperature": 0, **PROXY_DEFAULTS, **fields}
    if not server.legacy:
        response = requests.post(server.url + "/completion", json=body, timeout=60)
        response.raise_for_status()
        return response.json()
    answer = server_stream(server, {**body, "n_probs": max(body.get("n_probs", 1), 1)})
    limit = body.get("n_predict", -1)
    tokens = answer["completion_probabilities"]
    if 0 <= limit < len(tokens):
        answer.update(
            content="".join(token["content"] for token in tokens[:limit]),
            completion_probabilities=tokens[:limit],
        )
    return answer


def server_stream(server: LlamaServer, body: dict) -> dict:
    """Stream ``body`` from the server; the final chunk, with all text and probabilities."""
    texts, probabilities = [], []
    with requests.post(
        server.url + "/completion", json={**body, "stream": True}, stream=True, timeout=60
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            assert line.startswith(b"data: "), line
            chunk = json.loads(line[len(b"data: ") :])
            texts.append(chunk["content"])
            if not chunk["stop"]:
                probabilities += chunk.get("completion_probabilities", [])
                continue
            return {**chunk, "content": "".join(texts), "completion_probabilities": probabilities}
    raise AssertionError(f"the {server.kind} stream ended without a final chunk")


def stop_kind(body: dict) -> str:
    """``eos``, ``word`` or ``limit``, from either kind's way of saying it."""
    if "stop_type" in body:
        return body["stop_type"]
    return next(api for api in ("eos", "word", "limit") if body[f"stopped_{api}"])


def server_expects(server: LlamaServer, api: str, text: str, **fields: Any) -> dict:
    """What the server answers to the prompt the proxy should make of ``text``."""
    prompt, stop = upstream_prompt(server, api, text)
    return server_completion(server, prompt, stop=stop, **fields)


def server_tokens(server: LlamaServer, text: str) -> list:
    """The server's own tokenization of ``text`` (no BOS)."""
    response = requests.post(server.url + "/tokenize", json={"content": text}, timeout=10)
    response.raise_for_status()
    return response.json()["tokens"]


def slot_busy(server: LlamaServer) -> bool:
    """Whether the server's slots are all taken: it says so (current), or refuses (old)."""
    if not server.legacy:
        slots = requests.get(server.url + "/slots", timeout=10).json()
        return all(slot["is_processing"] for slot in slots)
    probe = requests.post(
        server.url + "/completion", timeout=10, json={"prompt": "x", "n_predict": 1, "n_keep": 0}
    )
    return probe.status_code == 404


def assert_names_the_server(message: str, server: LlamaServer, proxy: ProxyProcess) -> None:
    """An error tells the client which model's server failed; its address is in the log only."""
    assert "the server of the model" in message and server.url not in message
    assert f"[upstream {server.url}]" in proxy.log()


def proxy_health(proxy: ProxyProcess) -> dict:
    return proxy.health()


# -- the proxy, spoken to through the SDK or raw HTTP ---------------------------------------


@dataclasses.dataclass
class Answer:
    """What one SDK request produced, streamed or not."""

    text: str
    finish_reason: str
    usage: Any
    raw: Any  # the SDK response, or the list of stream chunks


def ask(
    client: openai.OpenAI,
    api: str,
    text: Optional[str] = None,
    *,
    stream: bool = False,
    **fields: Any,
) -> Answer:
    """Send one chat (``text`` as the user message) or completion (``text`` as the prompt).

    Greedy unless ``fields`` set a temperature. A stream asks for the usage chunk, and its
    framing is checked here: one id, exactly one finish chunk, usage last.
    """
    text = default_text(api) if text is None else text
    fields.setdefault("temperature", 0)
    if api == "chat":
        create = client.chat.completions.create
        fields["messages"] = [{"role": "user", "content": text}]
    else:
        create = client.completions.create
        fields["prompt"] = text
    if not stream:
        answer = create(model=MODEL, **fields)
        choice = answer.choices[0]
        return Answer(
            choice.message.content if api == "chat" else choice.text,
            choice.finish_reason,
            answer.usage,
            answer,
        )

    with create(
        model=MODEL, stream=True, stream_options={"include_usage": True}, **fields
    ) as events:
        chunks = list(events)
    *bodies, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(chunk.choices for chunk in bodies)
    assert len({chunk.id for chunk in chunks}) == 1
    choices = [chunk.choices[0] for chunk in bodies]
    if api == "chat":
        assert choices[0].delta.role == "assistant"
        streamed = "".join(choice.delta.content or "" for choice in choices)
    else:
        streamed = "".join(choice.text for choice in choices)
    finishes = [choice.finish_reason for choice in choices if choice.finish_reason]
    assert len(finishes) == 1 and choices[-1].finish_reason == finishes[0]
    return Answer(streamed, finishes[0], last.usage, chunks)


def sse_events(response: requests.Response) -> Iterator[Any]:
    """Decode a raw streaming response's events as they arrive; ``[DONE]`` stays a string."""
    for line in response.iter_lines():
        if not line:
            continue
        assert line.startswith(b"data: "), line
        data = line[len(b"data: ") :].decode("utf-8")
        yield data if data == "[DONE]" else json.loads(data)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(model, logs, kind) -> Iterator[LlamaServer]:
    """The module's server, with four slots so requests run side by side."""
    with LlamaServer(model, logs / f"{kind}.log", kind=kind, parallel=4, ctx_size=4096) as server:
        yield server


@pytest.fixture(scope="module")
def waitress_proxy(upstream, logs) -> Iterator[ProxyProcess]:
    with ProxyProcess(
        upstream.url, logs / f"proxy-waitress-{upstream.kind}.log", how="waitress"
    ) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def gunicorn_proxy(upstream, logs) -> Iterator[ProxyProcess]:
    with ProxyProcess(
        upstream.url, logs / f"proxy-gunicorn-{upstream.kind}.log", how="gunicorn"
    ) as proxy:
        yield proxy


@pytest.fixture(params=["waitress", "gunicorn"])
def any_client(request) -> Iterator[openai.OpenAI]:
    """An SDK client of the proxy under each HTTP server it ships with."""
    with request.getfixturevalue(f"{request.param}_proxy").sdk() as client:
        yield client


@pytest.fixture
def client(waitress_proxy) -> Iterator[openai.OpenAI]:
    with waitress_proxy.sdk() as client:
        yield client


@pytest.fixture
def endless_upstream(model, logs, kind, request) -> Iterator[LlamaServer]:
    """A one-slot server of the test's own that shifts its context instead of stopping.

    It is SIGKILLed afterwards: a server still generating hangs on SIGTERM.
    """
    name = request.node.name.replace("[", "-").rstrip("]")
    server = LlamaServer(
        model, logs / f"{kind}-{name}.log", kind=kind, parallel=1, ctx_size=2048, context_shift=True
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


# -- generation ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_greedy_text_is_the_servers_streamed_or_not(any_client, upstream, api):
    expected = server_expects(upstream, api, default_text(api), n_predict=MAX_TOKENS)
    whole = ask(any_client, api, max_tokens=MAX_TOKENS)
    streamed = ask(any_client, api, stream=True, max_tokens=MAX_TOKENS)
    assert expected["content"].strip() and stop_kind(expected) == "limit"
    assert whole.text == streamed.text == expected["content"]
    assert whole.finish_reason == streamed.finish_reason == "length"
    assert whole.raw.model == MODEL
    assert whole.raw.id.startswith("chatcmpl-" if api == "chat" else "cmpl-")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_stop_sequence_ends_the_text_before_it(client, upstream, api, stream):
    full = server_expects(upstream, api, default_text(api), n_predict=MAX_TOKENS)["content"]
    stop = " " + full.split()[2]  # the model's third word
    answer = ask(client, api, stream=stream, max_tokens=MAX_TOKENS, stop=[stop])
    assert answer.text == full[: full.index(stop)]
    assert answer.text.strip() and stop not in answer.text
    assert answer.finish_reason == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_max_tokens_ends_with_length(client, api, stream):
    answer = ask(client, api, stream=stream, max_tokens=5)
    assert answer.finish_reason == "length"
    assert answer.usage.completion_tokens == 5


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_forced_eos_ends_with_stop(client, upstream, api, stream):
    expected = server_expects(
        upstream, api, default_text(api), n_predict=MAX_TOKENS, logit_bias=[[EOS_ID, 100]]
    )
    answer = ask(client, api, stream=stream, max_tokens=MAX_TOKENS, logit_bias={str(EOS_ID): 100})
    assert stop_kind(expected) == "eos"
    assert answer.text == ""
    assert answer.finish_reason == "stop"
    assert answer.usage.completion_tokens == expected["tokens_predicted"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_forced_word_is_generated(client, api, stream):
    answer = ask(client, api, stream=stream, max_tokens=3, logit_bias={str(token_id("moon")): 100})
    assert answer.text == " moon moon moon"


@pytest.mark.parametrize("api", APIS)
def test_usage_is_the_servers_own_count(client, upstream, api):
    expected = server_expects(upstream, api, default_text(api), n_predict=MAX_TOKENS)
    counts = {
        "prompt_tokens": expected["tokens_evaluated"],
        "completion_tokens": expected["tokens_predicted"],
        "total_tokens": expected["tokens_evaluated"] + expected["tokens_predicted"],
    }
    whole = ask(client, api, max_tokens=MAX_TOKENS)
    streamed = ask(client, api, stream=True, max_tokens=MAX_TOKENS)
    for usage in (whole.usage, streamed.usage):
        assert {name: getattr(usage, name) for name in counts} == counts


@only("llamacpp-2023", "llamacpp", why="PowerInfer's server reads a seed but never applies it")
@pytest.mark.parametrize("api", APIS)
def test_same_seed_gives_the_servers_text(client, upstream, api):
    expected = server_expects(
        upstream, api, default_text(api), n_predict=MAX_TOKENS, temperature=1, seed=4242
    )
    whole = ask(client, api, max_tokens=MAX_TOKENS, temperature=1, seed=4242)
    streamed = ask(client, api, stream=True, max_tokens=MAX_TOKENS, temperature=1, seed=4242)
    assert whole.text == streamed.text == expected["content"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_several_prompts_and_choices_are_the_servers(client, upstream, stream):
    prompts = ["the cat", "a dog"]
    expected = [server_completion(upstream, prompt, n_predict=8) for prompt in prompts]
    fields = dict(model=MODEL, prompt=prompts, n=2, max_tokens=8, temperature=0)
    if stream:
        texts = ["", "", "", ""]
        with client.completions.create(
            stream=True, stream_options={"include_usage": True}, **fields
        ) as chunks:
            for chunk in chunks:
                for choice in chunk.choices:
                    texts[choice.index] += choice.text
                usage = chunk.usage
    else:
        answer = client.completions.create(**fields)
        assert [choice.index for choice in answer.choices] == [0, 1, 2, 3]
        texts, usage = [choice.text for choice in answer.choices], answer.usage
    assert texts == [want["content"] for want in expected for _ in range(2)]
    # as OpenAI counts: each prompt once, however many choices it has
    assert usage.prompt_tokens == sum(want["tokens_evaluated"] for want in expected)
    assert usage.completion_tokens == 4 * 8


# -- logprobs ------------------------------------------------------------------------------


def logprob_entries(entries: list) -> list:
    """Probabilities in current llama-server's shape, whichever kind listed them.

    Old servers give ``{content, probs: [{tok_str, prob}]}``: plain probabilities, no bytes.
    """

    def entry(token: str, logprob: float) -> dict:
        return {"token": token, "bytes": list(token.encode()), "logprob": logprob}

    def log(probability: float) -> float:
        return math.log(probability) if probability > 0 else -9999.0

    if not entries or "probs" not in entries[0]:
        return entries
    return [
        {
            **entry(
                item["content"],
                next(log(p["prob"]) for p in item["probs"] if p["tok_str"] == item["content"]),
            ),
            "top_logprobs": [entry(p["tok_str"], log(p["prob"])) for p in item["probs"]],
        }
        for item in entries
    ]


def approx(value: float) -> Any:
    # llama-server keeps its KV cache in f16, so the same prompt evaluated in another slot,
    # batch or cache state gives logprobs a few thousandths apart
    return pytest.approx(value, abs=0.02)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_chat_logprobs_are_the_servers(client, upstream, stream):
    expected = logprob_entries(
        server_expects(upstream, "chat", USER, n_predict=4, n_probs=2)["completion_probabilities"]
    )
    answer = ask(client, "chat", stream=stream, max_tokens=4, logprobs=True, top_logprobs=2)
    if stream:
        content = [
            item
            for chunk in answer.raw[:-1]
            if chunk.choices[0].logprobs
            for item in chunk.choices[0].logprobs.content
        ]
    else:
        content = answer.raw.choices[0].logprobs.content
    assert len(content) == len(expected) == 4
    assert "".join(item.token for item in content) == answer.text
    for got, want in zip(content, expected, strict=True):
        assert (got.token, got.bytes) == (want["token"], want["bytes"])
        assert got.logprob == approx(want["logprob"])
        assert [(alt.token, alt.bytes) for alt in got.top_logprobs] == [
            (alt["token"], alt["bytes"]) for alt in want["top_logprobs"]
        ]
        assert [alt.logprob for alt in got.top_logprobs] == [
            approx(alt["logprob"]) for alt in want["top_logprobs"]
        ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_completion_logprobs_are_the_servers(client, upstream, stream):
    expected = logprob_entries(
        server_completion(upstream, PROMPT, n_predict=4, n_probs=2)["completion_probabilities"]
    )
    answer = ask(client, "completion", stream=stream, max_tokens=4, logprobs=2)
    if stream:
        parts = [
            chunk.choices[0].logprobs for chunk in answer.raw[:-1] if chunk.choices[0].logprobs
        ]
        tokens = [token for part in parts for token in part.tokens]
        token_logprobs = [lp for part in parts for lp in part.token_logprobs]
        top = [alts for part in parts for alts in part.top_logprobs]
    else:
        logprobs = answer.raw.choices[0].logprobs
        tokens, token_logprobs, top = (
            logprobs.tokens,
            logprobs.token_logprobs,
            logprobs.top_logprobs,
        )
        offsets = logprobs.text_offset
        assert [b - a for a, b in pairwise(offsets)] == [len(t) for t in tokens[:-1]]
    assert tokens == [want["token"] for want in expected]
    assert "".join(tokens) == answer.text
    assert token_logprobs == [approx(want["logprob"]) for want in expected]
    assert top == [
        {alt["token"]: approx(alt["logprob"]) for alt in want["top_logprobs"]} for want in expected
    ]


# -- prompts -------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_tokenize_returns_the_prompts_tokens(client, upstream, api):
    prompt, _ = upstream_prompt(upstream, api, default_text(api))
    answer = ask(client, api, max_tokens=2, extra_body={"tokenize": True})
    tokens = server_tokens(upstream, prompt)
    assert answer.raw.model_extra["promptToken"] == tokens
    assert answer.usage.prompt_tokens == len(tokens) + 1  # llama-server adds BOS


@pytest.fixture(scope="module")
def historic_proxy(upstream, logs) -> Iterator[ProxyProcess]:
    """The proxy as an ``api_like_OAI`` user starts it: with one of its historic flags."""
    with ProxyProcess(
        upstream.url,
        logs / f"proxy-historic-{upstream.kind}.log",
        args=["--user-name", "\\nUSER: "],
    ) as proxy:
        yield proxy


@only("llamacpp", why="the old servers report no chat template")
def test_by_default_a_chat_is_the_models_own_template(client, upstream):
    applied = requests.post(
        upstream.url + "/apply-template",
        json={"messages": [{"role": "user", "content": USER}]},
        timeout=10,
    )
    assert applied.json()["prompt"] == model_prompt(USER)
    expected = server_completion(upstream, model_prompt(USER), n_predict=MAX_TOKENS)
    historic = server_completion(upstream, historic_prompt(USER), n_predict=MAX_TOKENS)
    assert expected["content"] != historic["content"]  # so the answer tells the templates apart
    answer = ask(client, "chat", max_tokens=MAX_TOKENS, extra_body={"tokenize": True})
    streamed = ask(client, "chat", stream=True, max_tokens=MAX_TOKENS)
    assert answer.raw.model_extra["promptToken"] == server_tokens(upstream, model_prompt(USER))
    assert answer.text == streamed.text == expected["content"]


@only("llamacpp", why="the old servers report no chat template: historic is theirs anyway")
def test_a_historic_flag_keeps_the_historic_template(historic_proxy, upstream):
    expected = server_completion(
        upstream, historic_prompt(USER), n_predict=MAX_TOKENS, stop=HISTORIC_STOP
    )
    with historic_proxy.sdk() as client:
        answer = ask(client, "chat", max_tokens=MAX_TOKENS, extra_body={"tokenize": True})
    assert answer.raw.model_extra["promptToken"] == server_tokens(upstream, historic_prompt(USER))
    assert answer.text == expected["content"]


# -- serving -------------------------------------------------------------------------------


def test_eight_concurrent_streams_each_complete(client, upstream):
    texts = [
        "the cat",
        "a dog",
        "hello world",
        "red sun",
        "my house",
        "blue sea",
        "one two three",
        "good day",
    ]
    jobs = [(APIS[i % 2], text) for i, text in enumerate(texts)]
    expected = [server_expects(upstream, api, text, n_predict=48)["content"] for api, text in jobs]
    start = threading.Barrier(len(jobs))

    def run(job: tuple) -> Answer:
        start.wait(DEADLINE)
        return ask(client, *job, stream=True, max_tokens=48)

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(run, jobs))
    assert [answer.text for answer in answers] == expected
    assert [answer.finish_reason for answer in answers] == ["length"] * len(jobs)
    assert [answer.usage.completion_tokens for answer in answers] == [48] * len(jobs)


@pytest.mark.parametrize("how", ["waitress", "gunicorn"])
def test_client_disconnect_frees_the_slot(endless_upstream, logs, how):
    server = endless_upstream
    with ProxyProcess(
        server.url, logs / f"proxy-disconnect-{server.kind}-{how}.log", how=how
    ) as proxy:
        with requests.post(
            proxy.url + "/v1/completions", json=ENDLESS, stream=True, timeout=DEADLINE
        ) as response:
            assert response.status_code == 200
            events = sse_events(response)
            for _ in range(3):
                assert next(events)["choices"][0]["finish_reason"] is None
            assert slot_busy(server)
        wait_for(
            lambda: not slot_busy(server),
            "the server freeing the slot of the stream the client closed",
        )
        if how == "waitress":  # one process: its /health sees the lease handed back
            wait_for(lambda: proxy_health(proxy)["in_flight"] == 0, "the lease's release")
        with proxy.sdk() as client:
            assert ask(client, "completion", max_tokens=4).finish_reason == "length"


def test_api_key_is_enforced(upstream, logs):
    with ProxyProcess(
        upstream.url, logs / f"proxy-keyed-{upstream.kind}.log", args=["--api-key", API_KEY]
    ) as proxy:
        with proxy.sdk("wrong-key") as client, pytest.raises(openai.AuthenticationError):
            ask(client, "chat", max_tokens=2)
        no_key = requests.post(
            proxy.url + "/v1/completions",
            timeout=10,
            json={"model": MODEL, "prompt": PROMPT, "max_tokens": 2},
        )
        assert no_key.status_code == 401
        assert no_key.json()["error"]["type"] == "authentication_error"
        with proxy.sdk(API_KEY) as client:
            answer = ask(client, "chat", max_tokens=MAX_TOKENS)
        assert (
            answer.text == server_expects(upstream, "chat", USER, n_predict=MAX_TOKENS)["content"]
        )
        assert requests.get(proxy.url + "/health", timeout=10).status_code == 200


def test_upstream_killed_mid_stream_gives_503_then_recovers(endless_upstream, logs):
    server = endless_upstream
    with (
        ProxyProcess(server.url, logs / f"proxy-killed-{server.kind}.log") as proxy,
        proxy.sdk() as client,
    ):
        assert requests.get(proxy.url + "/health", timeout=10).status_code == 200
        with requests.post(
            proxy.url + "/v1/completions", json=ENDLESS, stream=True, timeout=DEADLINE
        ) as response:
            events = sse_events(response)
            for _ in range(3):
                assert next(events)["choices"][0]["finish_reason"] is None
            server.kill()
            rest = list(events)
        assert rest[-1] == "[DONE]"
        assert_names_the_server(rest[-2]["error"]["message"], server, proxy)

        with pytest.raises(openai.InternalServerError) as info:
            ask(client, "chat", max_tokens=4)
        assert info.value.status_code == 503
        down = requests.post(
            proxy.url + "/v1/chat/completions",
            timeout=DEADLINE,
            json={"model": MODEL, "messages": [{"role": "user", "content": USER}], "max_tokens": 4},
        )
        assert down.status_code == 503
        assert_names_the_server(down.json()["error"]["message"], server, proxy)
        assert requests.get(proxy.url + "/health", timeout=DEADLINE).status_code == 503

        server.start()  # the same port
        expected = server_expects(server, "chat", USER, n_predict=MAX_TOKENS)["content"]
        assert ask(client, "chat", max_tokens=MAX_TOKENS).text == expected
        assert ask(client, "chat", stream=True, max_tokens=MAX_TOKENS).text == expected
        assert requests.get(proxy.url + "/health", timeout=10).status_code == 200
        assert proxy_health(proxy)["in_flight"] == 0  # the failed stream's lease came back


# -- text that is not ASCII ------------------------------------------------------------------

# Not in the tiny vocabulary: the server spells it in byte tokens, one byte a token, so a
# token limit can end inside a character.
WIDE = "中文😀"
WIDE_GRAMMAR = f'root ::= "{WIDE}"'
WIDE_PROMPT = "你好，世界 😀 the cat"


def first_characters(limit: int) -> str:
    """The whole characters among the first ``limit`` bytes (tokens) of the forced answer."""
    return WIDE.encode()[:limit].decode("utf-8", "ignore")


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
@pytest.mark.parametrize("api", APIS)
def test_a_limit_inside_a_character_is_answered_whole(client, upstream, api, limit):
    forced = {"n_predict": limit, "grammar": WIDE_GRAMMAR}
    server_streamed = server_stream(
        upstream, {**expected_request(upstream, api, WIDE_PROMPT), **forced}
    )
    answers = [
        ask(
            client,
            api,
            WIDE_PROMPT,
            stream=stream,
            max_tokens=limit,
            extra_body={"grammar": WIDE_GRAMMAR},
        )
        for stream in (False, True)
    ]
    whole, streamed = answers
    if upstream.legacy:
        # the server overshoots the limit (to three tokens at least): the proxy keeps it,
        # and answers whole requests from the stream too
        assert server_streamed["content"].startswith(streamed.text)
        assert whole.text == streamed.text == first_characters(limit)
    else:
        # the server's stream leaves a cut character out; its whole completion has U+FFFD,
        # its chat layer's whole answer leaves it out too
        assert streamed.text == server_streamed["content"] == first_characters(limit)
        server_whole = server_expects(upstream, api, WIDE_PROMPT, **forced)
        assert whole.text == (
            server_whole["content"] if api == "completion" else first_characters(limit)
        )
    for answer in answers:
        assert answer.finish_reason == "length"
        assert answer.usage.completion_tokens == limit
        assert answer.usage.prompt_tokens == server_streamed["tokens_evaluated"]


def expected_request(upstream: LlamaServer, api: str, text: str) -> dict:
    prompt, stop = upstream_prompt(upstream, api, text)
    return {"prompt": prompt, "stop": stop, "temperature": 0, **PROXY_DEFAULTS}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_wide_text_in_and_out_is_the_servers(client, upstream, api, stream):
    expected = server_expects(
        upstream, api, WIDE_PROMPT, n_predict=MAX_TOKENS, grammar=WIDE_GRAMMAR
    )
    answer = ask(
        client,
        api,
        WIDE_PROMPT,
        stream=stream,
        max_tokens=MAX_TOKENS,
        extra_body={"grammar": WIDE_GRAMMAR, "tokenize": True},
    )
    assert expected["content"] == answer.text == WIDE
    assert answer.finish_reason == "stop"
    assert answer.usage.prompt_tokens == expected["tokens_evaluated"]
    assert answer.usage.completion_tokens == expected["tokens_predicted"]
    if not stream:
        prompt, _ = upstream_prompt(upstream, api, WIDE_PROMPT)
        assert answer.raw.model_extra["promptToken"] == server_tokens(upstream, prompt)


def test_wide_text_tokenizes_into_whole_pieces(waitress_proxy, upstream):
    tokens = server_tokens(upstream, WIDE_PROMPT)
    answer = requests.post(
        waitress_proxy.url + "/v1/tokenize", json={"prompt": WIDE_PROMPT}, timeout=DEADLINE
    ).json()
    assert answer["tokens"] == tokens and answer["count"] == len(tokens)
    assert "".join(answer["pieces"]).strip() == WIDE_PROMPT
    assert "\ufffd" not in "".join(answer["pieces"])
    glm = requests.post(
        waitress_proxy.url + "/tokenize", json={"prompt": WIDE_PROMPT}, timeout=DEADLINE
    ).json()
    assert glm == {"tokenIds": tokens, "tokens": answer["pieces"]}


# -- admission -----------------------------------------------------------------------------


def test_sixty_four_streams_through_four_slots_all_complete(upstream, logs):
    texts = [
        f"{a} {b}"
        for a in ("the", "a", "my", "one", "red", "big", "old", "new")
        for b in ("cat", "dog", "sun", "sea", "man", "day", "tree", "bird")
    ]
    expected = {text: server_completion(upstream, text, n_predict=8)["content"] for text in texts}
    start = threading.Barrier(len(texts))
    with (
        ProxyProcess(
            upstream.url, logs / f"proxy-64-{upstream.kind}.log", args=["--threads", "128"]
        ) as proxy,
        proxy.sdk() as client,
    ):

        def run(text: str) -> Answer:
            start.wait(DEADLINE)
            return ask(client, "completion", text, stream=True, max_tokens=8)

        with ThreadPoolExecutor(len(texts)) as pool:
            answers = list(pool.map(run, texts))
        health = proxy_health(proxy)
    assert [answer.text for answer in answers] == [expected[text] for text in texts]
    assert {answer.finish_reason for answer in answers} == {"length"}
    assert (health["slots"], health["in_flight"], health["queued"]) == (4, 0, 0)
