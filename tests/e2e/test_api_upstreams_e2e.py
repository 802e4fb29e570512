"""Servers that speak a public API behind the proxy: current llama-server, started with
``--api-key``, is the real one, through its own ``/v1`` (``backend = "openai"``), its
``/v1/messages`` (``backend = "anthropic"``) and another oai-proxy in front of it, behind a
key of its own (``openai`` again). The proxy's key for it comes from an environment
variable and is never shown; the OpenAI SDK's chats, streams and tool round trip come
through as the upstream answered them, a row per backend; Anthropic's, the Responses API's
and Ollama's clients reach it through their translation, once each; what only a server.cpp
reads is refused by name; a model's own headers, timeouts and filters reach it.

Models fall back to it: a local one whose server stopped answering or died, and one whose
upstream is over its rate limit (429) or overloaded (503), each chat counted; a stream
whose server dies after its first byte ends with the API's error event instead. A local
model on one slot overflows to it while the slot is busy, and the share that did is
measured; one asked one chat at a time never does.

The openai backend's other routes: raw prompts on the same server's ``/v1/completions``,
embeddings on a llama-server started with ``--embeddings`` (the model declares them alone)
and reranking on one started with ``--reranking`` (learned), each behind the key; a route a
server lacks (embeddings on the chat server) is named for the client, and the model cards
say what each model serves."""

from __future__ import annotations

import json
import re
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest
import requests

from tests.processes import ProxyProcess

from .families import ANSWER, PARIS, RESULT_ANSWER
from .libraries import MODEL, ONE_CALL, QWEN3, RESULT, WEATHER
from .llama_server import LlamaServer
from .marks import CURRENT, on
from .refusing import RefusingServer
from .rerankmodel import ASKED, BEST_FIRST, EXPECTED_ORDER, QUERY, expected_score
from .scriptedmodel import write_scripted_gguf
from .tinymodel import EOS_ID, write_tiny_llama_gguf

UPSTREAM = "a server of a public API: current llama-server's /v1 and /v1/messages, with --api-key"
pytestmark = [pytest.mark.e2e, *on(CURRENT, why=UPSTREAM)]

SECRET = "sk-upstream-7f3a9c1e5b"  # the upstream's key: found nowhere the proxy writes
MODELS_FILE = """
[models.local]
upstreams = ["{local}"]
fallbacks = ["big"]

[models.big]
backend = "openai"
upstreams = ["{url}/v1"]
upstream_model = "{model}"
upstream_key_env = "BIG_BOX_KEY"

[models.messages]
backend = "anthropic"
upstreams = ["{url}"]
upstream_model = "{model}"
upstream_key_env = "BIG_BOX_KEY"

[models.responder]
backend = "openai"
upstreams = ["{url}/v1"]
upstream_model = "{model}"
upstream_key_env = "BIG_BOX_KEY"
endpoints = ["chat", "responses"]

[models.keyless]
backend = "openai"
upstreams = ["{url}/v1"]

[models.filtered]
backend = "openai"
upstreams = ["{url}/v1"]
upstream_model = "{model}"
headers_env = {{ "X-Api-Key" = "BIG_BOX_KEY" }}
timeouts = {{ connect = 5, read = 30, first_byte = 30 }}
filters = {{ strip = ["seed"], set = {{ max_tokens = 3 }} }}

[models.relayed]
backend = "openai"
upstreams = ["{inner}/v1"]
upstream_key_env = "INNER_PROXY_KEY"

[models.limited]
backend = "openai"
upstreams = ["{limited}/v1"]
fallbacks = ["big"]

[models.overloaded]
backend = "openai"
upstreams = ["{overloaded}/v1"]
fallbacks = ["big"]

[models.spilling]
upstreams = ["{one_slot}"]
overflow = "big"
overflow_after = 0

[models.endless]
upstreams = ["{one_slot}"]
fallbacks = ["big"]

[models.vectors]
backend = "openai"
upstreams = ["{embedder}/v1"]
upstream_key_env = "BIG_BOX_KEY"
endpoints = ["embeddings"]

[models.ranker]
backend = "openai"
upstreams = ["{ranker}/v1"]
upstream_key_env = "BIG_BOX_KEY"
"""
INNER_KEY = "sk-inner-proxy-3c9d"  # the key of another oai-proxy, in front of the same server


@pytest.fixture(scope="module")
def proxy(kind, logs, tmp_path_factory, model, reranker):
    """The proxy; ``upstream`` is the keyed chat server, ``embedder`` and ``ranker`` the
    keyed embedding and reranking servers (``model``: the tiny model, which embeds)."""
    folder = tmp_path_factory.mktemp("openai-upstream")
    scripted = write_scripted_gguf(
        folder / "qwen3.gguf", QWEN3.scripts(), QWEN3.tokens, QWEN3.chat_template(), name=MODEL
    )
    tiny = write_tiny_llama_gguf(folder / "tiny-llama.gguf")
    keyed = ["--api-key", SECRET]
    with (
        LlamaServer(
            scripted,
            logs / "openai-upstream.log",
            kind=kind,
            parallel=2,
            ctx_size=8192,
            extra_args=[*keyed, "--alias", MODEL],
        ) as server,
        LlamaServer(scripted, logs / "openai-upstream-local.log", kind=kind, parallel=1) as local,
        # the tests' tiny model, whose answers run as long as they are let: one slot, held
        LlamaServer(
            tiny, logs / "openai-upstream-one-slot.log", kind=kind, parallel=1, context_shift=True
        ) as one_slot,
        RefusingServer(429, logs / "openai-upstream-429.log") as limited,
        RefusingServer(503, logs / "openai-upstream-503.log") as overloaded,
        LlamaServer(
            model,
            logs / "openai-upstream-embedder.log",
            kind=kind,
            parallel=1,
            embedding=True,
            extra_args=keyed,
        ) as embedder,
        LlamaServer(
            reranker,
            logs / "openai-upstream-ranker.log",
            kind=kind,
            parallel=1,  # one slot: see test_rerank_e2e's note
            extra_args=[*keyed, "--reranking"],
        ) as ranker,
        ProxyProcess(
            server.url,
            logs / "proxy-inner.log",
            args=["--llama-api-key", SECRET, "--api-key", INNER_KEY],
        ) as inner,
    ):
        (folder / "models.toml").write_text(
            MODELS_FILE.format(
                url=server.url,
                model=MODEL,
                local=local.url,
                inner=inner.url,
                limited=limited.url,
                overloaded=overloaded.url,
                one_slot=one_slot.url,
                embedder=embedder.url,
                ranker=ranker.url,
            )
        )
        with ProxyProcess(
            server.url,
            logs / "proxy-openai-upstream.log",
            args=[
                *("--config", str(folder / "models.toml"), "--upstream-timeout", "5"),
                *("--capture", "on"),
            ],
            env={"BIG_BOX_KEY": SECRET, "INNER_PROXY_KEY": INNER_KEY},
        ) as running:
            running.local, running.one_slot = local, one_slot
            running.refusing = {"limited": limited, "overloaded": overloaded}
            running.local, running.upstream = local, server
            running.embedder, running.ranker = embedder, ranker
            yield running


# a row per backend: each API backend's wire, and another oai-proxy as an upstream once
@pytest.mark.parametrize("served", ["big", "messages", "relayed"])
def test_a_whole_answer_and_a_streamed_one(proxy, served):
    client = proxy.sdk()
    whole = client.chat.completions.create(
        model=served, messages=[{"role": "user", "content": "Hello?"}]
    )
    assert whole.model == served
    assert whole.choices[0].message.content == ANSWER
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model=served,
            messages=[{"role": "user", "content": "Hello?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


@pytest.mark.parametrize("served", ["big", "messages"])
def test_a_tool_round_trip_whole_and_streamed(proxy, served):
    client = proxy.sdk()
    tools = [WEATHER]
    question = {"role": "user", "content": ONE_CALL}
    called = client.chat.completions.create(model=served, messages=[question], tools=tools)
    message = called.choices[0].message
    assert called.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("get_weather", PARIS)
    ]
    pieces = [
        call
        for chunk in client.chat.completions.create(
            model=served, messages=[question], tools=tools, stream=True
        )
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or ()
    ]
    assert pieces[0].function.name == "get_weather"
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == PARIS
    answered = client.chat.completions.create(
        model=served,
        tools=tools,
        messages=[
            question,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": RESULT},
        ],
    )
    assert answered.choices[0].message.content == RESULT_ANSWER


def test_anthropics_sdk_through_the_messages_api_to_a_messages_server(proxy):
    """The Messages dialect is the same whatever the backend: once, on the backend that
    speaks Messages too."""
    model = "messages"
    client = proxy.anthropic()
    message = client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello?"}]
    )
    assert [block.text for block in message.content if block.type == "text"] == [ANSWER]
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello?"}]
    ) as stream:
        assert "".join(stream.text_stream) == ANSWER


def test_a_messages_client_goes_on_to_a_messages_server_as_it_wrote(proxy):
    """What only the Messages API has (cache marks, sealed thoughts, metadata) goes upstream
    as the client wrote it, whole and streamed, and the answer comes back as the server
    wrote it, under the name the client asked for."""
    history = [
        {"role": "user", "content": "Hello?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "A greeting.", "signature": "sealed-7"},
                {"type": "text", "text": ANSWER},
            ],
        },
        {"role": "user", "content": "Hello?"},
    ]
    asked = {
        "model": "messages",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": history,
        "metadata": {"user_id": "user-7"},
    }
    client = proxy.anthropic()
    message = client.messages.create(**asked)
    assert message.model == "messages"
    assert [block.text for block in message.content if block.type == "text"] == [ANSWER]
    with client.messages.stream(**asked) as stream:
        assert "".join(stream.text_stream) == ANSWER
        assert stream.get_final_message().model == "messages"
    sent = [turn["upstream_body"] for turn in proxy.exchanges()[-2:]]
    assert sent == [{**asked, "model": MODEL, "stream": stream} for stream in (False, True)]
    # and the server counts the prompt's tokens itself
    counted = {name: asked[name] for name in ("model", "system", "messages")}
    assert client.messages.count_tokens(**counted).input_tokens > 0


def test_the_responses_ollama_and_glm_apis_through_their_translation(proxy):
    response = proxy.sdk().responses.create(model="big", input="Hello?", store=True)
    assert response.output_text == ANSWER
    followed = proxy.sdk().responses.create(
        model="big", input="Hello?", previous_response_id=response.id
    )
    assert followed.output_text == ANSWER
    answer = proxy.ollama().chat(model="big", messages=[{"role": "user", "content": "Hello?"}])
    assert answer.message.content == ANSWER
    glm = requests.post(
        proxy.url + "/chat", json={"model": "big", "prompt": "Hello?", "history": []}, timeout=60
    )
    assert glm.json()["content"] == ANSWER


PROXYS_ID = re.compile(r"resp_[0-9a-f]{24}")  # the ids of the responses the proxy writes


def test_a_responses_client_the_proxy_keeps_nothing_of_reaches_the_upstreams_own_api(proxy):
    """A model whose upstream declares OpenAI's Responses API takes a body the proxy keeps
    nothing of there as it came, and the answer back as the upstream wrote it (its id),
    whole and streamed; a body the proxy keeps is translated onto chats as on any model."""
    client = proxy.sdk()
    whole = client.responses.create(model="responder", input="Hello?", store=False)
    assert whole.output_text == ANSWER and whole.model == "responder"
    assert not PROXYS_ID.fullmatch(whole.id)
    events = list(
        client.responses.create(model="responder", input="Hello?", store=False, stream=True)
    )
    done = events[-1].response
    assert done.output_text == ANSWER and done.model == "responder"
    assert not PROXYS_ID.fullmatch(done.id) and done.usage.output_tokens > 0
    kept = client.responses.create(model="responder", input="Hello?")
    assert PROXYS_ID.fullmatch(kept.id)
    assert client.responses.retrieve(kept.id).output_text == ANSWER


def upstreams_own(server: LlamaServer, path: str, body: dict) -> dict:
    """What a keyed upstream answers a client that asks it directly."""
    headers = {"Authorization": f"Bearer {SECRET}"}
    return requests.post(server.url + path, json=body, headers=headers, timeout=60).json()


def test_a_raw_prompt_whole_and_streamed_as_the_upstream_completes_it(proxy):
    client = proxy.sdk()
    own = upstreams_own(proxy.upstream, "/v1/completions", {"prompt": "Hello?", "max_tokens": 64})
    text = own["choices"][0]["text"]
    assert ANSWER in text
    whole = client.completions.create(model="big", prompt="Hello?", max_tokens=64, logprobs=1)
    assert whole.model == "big" and whole.object == "text_completion"
    assert whole.choices[0].text == text and whole.choices[0].finish_reason == "stop"
    assert whole.usage.completion_tokens == own["usage"]["completion_tokens"] > 0
    probabilities = whole.choices[0].logprobs
    assert "".join(probabilities.tokens) == text
    assert len(probabilities.token_logprobs) == len(probabilities.tokens)
    chunks = list(
        client.completions.create(
            model="big",
            prompt="Hello?",
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # Ollama's generate with raw = true is a raw prompt too
    generated = proxy.ollama().generate(model="big", prompt="Hello?", raw=True)
    assert generated.response == text and generated.done_reason == "stop"


def test_embeddings_as_the_upstream_embeds_and_counts_them(proxy):
    texts = ["the cat sat", "a dog ran home"]
    result = proxy.sdk().embeddings.create(model="vectors", input=texts, encoding_format="float")
    own = upstreams_own(proxy.embedder, "/v1/embeddings", {"input": texts})
    assert [item.index for item in result.data] == [0, 1]
    for item, expected in zip(result.data, own["data"], strict=True):
        assert item.embedding == pytest.approx(expected["embedding"], abs=1e-5)
    assert result.usage.prompt_tokens == own["usage"]["prompt_tokens"] > 0


def test_reranking_as_the_upstream_scores(proxy):
    answer = proxy.cohere().rerank(model="ranker", query=QUERY, documents=ASKED)
    assert [ASKED[result.index] for result in answer.results] == BEST_FIRST
    assert [round(result.relevance_score, 4) for result in answer.results] == [
        round(expected_score(keyword), 4) for keyword in EXPECTED_ORDER
    ]


def test_a_route_an_upstream_lacks_is_named_for_the_client_and_the_cards_say_what_each_serves(
    proxy,
):
    for _ in range(2):  # the second from what the proxy remembers
        refused = requests.post(
            proxy.url + "/v1/embeddings", json={"model": "big", "input": "x"}, timeout=30
        )
        assert refused.status_code == 501
        message = refused.json()["error"]["message"]
        assert message.startswith(
            "the model 'big' has no embeddings: the server of model 'big' has no /embeddings "
            "(it answered 501: This server does not support embeddings"
        )
        assert "127.0.0.1" not in message
    with pytest.raises(openai.BadRequestError) as declared:
        proxy.sdk().completions.create(model="vectors", prompt="Hello?")
    assert declared.value.body["param"] == "prompt"
    assert "the models file gives its endpoints as embeddings" in declared.value.message
    proxy.cohere().rerank(model="ranker", query=QUERY, documents=ASKED[:1])
    cards = {
        card["id"]: card["capabilities"]
        for card in requests.get(proxy.url + "/v1/models", timeout=30).json()["data"]
    }
    assert cards["big"] == ["completion", "tools"]  # no embeddings, as found
    assert cards["vectors"] == ["embedding"]  # as declared
    assert cards["ranker"] == ["completion", "tools", "rerank"]  # as it answered
    assert proxy.ollama().show("vectors").capabilities == ["embedding"]


def test_what_only_a_servercpp_reads_is_refused_by_name(proxy):
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.sdk().chat.completions.create(
            model="big",
            messages=[{"role": "user", "content": "Hello?"}],
            extra_body={"grammar": 'root ::= "yes"'},
        )
    assert refused.value.body["param"] == "grammar"
    assert "grammar cannot be served" in refused.value.message


def test_a_refused_key_is_named_and_the_key_is_shown_nowhere(proxy):
    with pytest.raises(openai.APIStatusError) as refused:
        proxy.sdk().chat.completions.create(
            model="keyless", messages=[{"role": "user", "content": "Hello?"}]
        )
    assert refused.value.status_code == 502
    assert "refused the proxy's key" in refused.value.message
    with pytest.raises(anthropic.APIStatusError):
        proxy.anthropic().messages.create(
            model="keyless", max_tokens=8, messages=[{"role": "user", "content": "Hello?"}]
        )
    health = requests.get(proxy.url + "/health", timeout=30).text
    health += requests.get(proxy.url + "/v1/models", timeout=30).text
    assert SECRET not in health and SECRET not in proxy.log() and INNER_KEY not in proxy.log()
    captured = list(proxy.exchanges_db.parent.glob(proxy.exchanges_db.name + "*"))
    assert captured and not any(SECRET.encode() in path.read_bytes() for path in captured)
    assert "127.0.0.1" not in refused.value.message


def test_a_key_in_a_header_of_the_operators_and_its_filters(proxy):
    """llama-server reads its key from ``X-Api-Key`` too: a header the operator adds, read
    from the environment; the answer names the fields the model's filters changed."""
    raw = proxy.sdk().chat.completions.with_raw_response.create(
        model="filtered", messages=[{"role": "user", "content": "Hello?"}], max_tokens=64, seed=7
    )
    answer = raw.parse()
    assert answer.choices[0].finish_reason == "length"  # the operator's 3 tokens, not 64
    assert answer.usage.completion_tokens == 3
    assert raw.headers["x-oai-proxy-left-out-fields"] == "seed"
    assert raw.headers["x-oai-proxy-replaced-fields"] == "max_tokens"
    assert SECRET not in proxy.log()


def answered_by(proxy, stream: bool, model: str = "local", **options) -> tuple:
    """``(the model the answer names, the served-model header, its text)`` of a chat asked of
    ``model``."""
    raw = proxy.sdk().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Hello?"}], stream=stream, **options
    )
    header = raw.headers.get("x-oai-proxy-served-model")
    if stream:
        chunks = [chunk for chunk in raw.parse() if chunk.choices]
        return chunks[0].model, header, "".join(c.choices[0].delta.content or "" for c in chunks)
    answer = raw.parse()
    return answer.model, header, answer.choices[0].message.content


def test_the_local_model_answers_while_it_can(proxy):
    assert answered_by(proxy, stream=False) == ("local", None, ANSWER)


@pytest.mark.faults
def test_a_local_server_that_stopped_answering_falls_back_before_the_first_byte(proxy):
    proxy.local.proc.send_signal(signal.SIGSTOP)  # it takes connections and says nothing
    try:
        assert answered_by(proxy, stream=False) == ("big", "big", ANSWER)
        assert answered_by(proxy, stream=True) == ("big", "big", ANSWER)
    finally:
        proxy.local.proc.send_signal(signal.SIGCONT)


@pytest.mark.faults
def test_a_local_server_killed_falls_back_and_no_client_sees_an_error(proxy):
    proxy.local.kill()
    answers = [answered_by(proxy, stream=each % 2 == 1) for each in range(6)]
    assert answers == [("big", "big", ANSWER)] * 6
    assert "Traceback" not in proxy.log()


EACH_WAY = 8  # whole chats, and as many streamed, asked of a model whose upstream refuses them


def outcome(call):
    """What ``call`` returned, or the API error the client saw."""
    try:
        return call()
    except openai.APIError as exc:
        return exc


@pytest.mark.faults
@pytest.mark.parametrize("name, status", [("limited", 429), ("overloaded", 503)])
def test_an_upstream_over_its_rate_limit_or_overloaded_falls_back(proxy, name, status):
    """Each chat, whole or streamed, four at a time, is refused by its model's upstream and
    answered by the fallback before any byte reached the client."""
    refusing = proxy.refusing[name]
    before = refusing.refused()
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(
            pool.map(
                lambda each: outcome(lambda: answered_by(proxy, each % 2 == 1, name)),
                range(2 * EACH_WAY),
            )
        )
    errors = [found for found in outcomes if isinstance(found, Exception)]
    answered = outcomes.count(("big", "big", ANSWER))
    refused = refusing.refused() - before
    print(
        f"{status}: {len(outcomes)} chats ({EACH_WAY} whole, {EACH_WAY} streamed), {refused} "
        f"refused by the upstream, {answered} answered by the fallback, {len(errors)} "
        "client errors"
    )
    assert errors == [] and answered == 2 * EACH_WAY
    assert refused == 2 * EACH_WAY  # each was asked of its own model first


# the tiny model's answer on the one-slot server: as long as it is let run
SPILLING = {"max_tokens": 48, "temperature": 0, "logit_bias": {str(EOS_ID): -100}}
TOGETHER = 8  # chats sent at once to the one-slot model


def test_a_model_overflows_while_its_slot_is_busy_and_never_while_it_is_free(proxy):
    one_at_a_time = [
        answered_by(proxy, each % 2 == 1, "spilling", **SPILLING)[:2] for each in range(4)
    ]
    assert one_at_a_time == [("spilling", None)] * 4
    start = threading.Barrier(TOGETHER)

    def together(each: int) -> tuple:
        start.wait()
        return answered_by(proxy, each % 2 == 1, "spilling", **SPILLING)[:2]

    with ThreadPoolExecutor(TOGETHER) as pool:
        served = list(pool.map(together, range(TOGETHER)))
    spilled = served.count(("big", "big"))
    print(
        f"{TOGETHER} chats at once (half streamed) on one slot: {spilled} overflowed "
        f"({spilled / TOGETHER:.0%}); one at a time: 0 of {len(one_at_a_time)}"
    )
    assert spilled + served.count(("spilling", None)) == TOGETHER
    assert 0 < spilled < TOGETHER  # the first found the slot free


@pytest.mark.faults
def test_a_stream_that_fails_after_its_first_byte_ends_with_an_error_event(proxy):
    """The server dies mid-answer: the stream ends with the API's error event, and is never
    begun again on the model's fallback."""
    stream = proxy.sdk().chat.completions.create(
        model="endless",
        messages=[{"role": "user", "content": "Hello?"}],
        stream=True,
        **{**SPILLING, "max_tokens": 100_000},
    )
    chunks = []
    try:
        with pytest.raises(openai.APIError) as ended:
            for chunk in stream:
                chunks.append(chunk)
                if len(chunks) == 3:
                    proxy.one_slot.kill()
    finally:
        proxy.one_slot.start()  # on the same port, for the tests after this one
    print(f"{len(chunks)} chunks from 'endless', then the error event: {ended.value.message}")
    assert len(chunks) >= 3 and {chunk.model for chunk in chunks} == {"endless"}
    assert "127.0.0.1" not in ended.value.message
    assert "model 'endless' could not answer" not in proxy.log()
