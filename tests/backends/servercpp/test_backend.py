"""The servercpp backend against canned HTTP replies: the exact payloads sent, the answers read."""

from __future__ import annotations

import json

import pytest

from proxy.backends.servercpp import parse
from proxy.backends.servercpp.backend import ServerCppBackend
from proxy.backends.servercpp.chattemplate import HistoricTemplate
from proxy.backends.servercpp.prompting import TemplateChoice
from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import (
    ContextLengthError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from proxy.core.types import GenerationRequest, Message, ResponseFormat, Sampling
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.fakes.canned import CannedServer
from tests.fakes.servercpp import FakeServerCpp
from tests.fakes.servercpp_wire import line_batches
from tests.processes import free_port

HISTORIC = HistoricTemplate("A chat.\n", "\nUSER: ", "\nASSISTANT: ", "\nRULE: ", "</s>")


def backend_of(
    url: str, template: str = "historic", read_timeout: float = 10, reasoning: str = "auto"
) -> ServerCppBackend:
    return ServerCppBackend(
        UpstreamClient(url, read_timeout=read_timeout),
        TemplateChoice(template, HISTORIC),
        Admission(url, SlotCount(), max_queue=4, queue_timeout=0.5),
        reasoning=reasoning,
    )


def add_kind(upstream: CannedServer, kind: str, **props) -> None:
    """Answer the detection probes the way each server kind does."""
    if kind == "llamacpp":
        upstream.get("/health", json_body={"status": "ok"})
        upstream.get("/props", json_body={"model_path": "/m/tiny.gguf", **props})
    else:
        upstream.get("/health", status=404, body="File Not Found")
        upstream.get(
            "/v1/models",
            status=200 if kind == "llamacpp-2023" else 404,
            json_body={"data": [{"id": "/m/tiny.gguf"}]},
        )
        upstream.get("/model.json", json_body={"model": "/m/tiny.gguf", "n_ctx": 512})
        upstream.post("/tokenize", json_body={"tokens": [9] * 20})  # a prompt's, without BOS


def final(kind: str, **extra) -> dict:
    body = {
        "content": "Hi!",
        "stop": True,
        "tokens_evaluated": 7,
        "tokens_predicted": 3,
        "truncated": False,
    }
    if kind == "llamacpp":
        body.update(stop_type="eos", id_slot=0)
    else:
        body.update(stopped_eos=True, stopped_word=False, stopped_limit=False, slot_id=0)
    body.update(extra)
    return body


@pytest.fixture
def upstream():
    with CannedServer() as server:
        yield server


@pytest.fixture
def make_backend(upstream):
    """Backends of the canned upstream, closed after the test."""
    made = []

    def make(*args, **kwargs) -> ServerCppBackend:
        made.append(backend_of(upstream.url, *args, **kwargs))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


CHAT = GenerationRequest(
    messages=(Message("system", "Be brief."), Message("user", "hi")),
    model="m",
    max_tokens=16,
    stop=("END",),
    sampling=Sampling(temperature=0.5, top_k=4, seed=7, logit_bias=((2, 5.0), (9, False))),
)


@pytest.mark.parametrize(
    "kind,slot_field",
    [("powerinfer", "slot_id"), ("llamacpp-2023", "slot_id"), ("llamacpp", "id_slot")],
)
def test_chat_payload_is_exact_for_each_kind(make_backend, upstream, kind, slot_field):
    add_kind(upstream, kind)
    legacy = kind != "llamacpp"
    if legacy:  # old servers' whole answers mangle cut characters: their streams are read
        sent = upstream.post(
            "/completion",
            content_type="text/event-stream",
            body=stream_body(
                {"content": "Hi!", "stop": False, slot_field: 0}, final(kind, content="")
            ),
        )
    else:
        sent = upstream.post("/completion", json_body=final(kind))
    result = make_backend().complete(CHAT)
    # old servers: their prompt cache left off, and a probability per token to count them by
    assert json.loads(sent.calls[0].body) == {
        "prompt": "A chat.\n\nRULE: Be brief.\nUSER: hi\nASSISTANT:",
        "stream": legacy,
        "stop": ["</s>", "END"],
        "n_keep": -1,
        "cache_prompt": not legacy,
        slot_field: -1,
        "n_predict": 16,
        "temperature": 0.5,
        "top_k": 4,
        "seed": 7,
        "logit_bias": [[2, 5.0], [9, False]],
        **({"n_probs": 1} if legacy else {}),
        # current servers keep the markers calls are read by, even as control tokens
        **({} if legacy else {"preserved_tokens": ["<tool_call>", "</tool_call>"]}),
    }
    assert (result.text, result.finish_reason) == ("Hi!", "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 3)


@pytest.mark.parametrize(
    "body,reason",
    [
        ({"stop_type": "limit"}, "length"),
        ({"stop_type": "word"}, "stop"),
        ({"stop_type": "eos"}, "stop"),
        ({"stopped_limit": True, "stopped_eos": False}, "length"),
        ({"stopped_word": True}, "stop"),
    ],
    ids=["limit", "word", "eos", "old-limit", "old-word"],
)
def test_finish_reason_from_either_flag_style(make_backend, upstream, body, reason):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body={"content": "x", "stop": True, **body})
    assert make_backend().complete(GenerationRequest(prompt="p")).finish_reason == reason


def test_raw_prompt_is_sent_as_is(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    sent = upstream.post("/completion", json_body=final("llamacpp"))
    make_backend().complete(GenerationRequest(prompt="Once upon", stop=("a", "a", "")))
    body = json.loads(sent.calls[0].body)
    assert body["prompt"] == "Once upon" and body["stop"] == ["a"]


def test_auto_template_comes_from_props(make_backend, upstream):
    add_kind(
        upstream,
        "llamacpp",
        chat_template="{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>",
        bos_token="<s>",
    )
    sent = upstream.post("/completion", json_body=final("llamacpp"))
    make_backend("auto").complete(GenerationRequest(messages=(Message("user", "hi"),)))
    assert json.loads(sent.calls[0].body)["prompt"] == "<user>hi<assistant>"


def test_response_format_per_kind(make_backend, upstream):
    add_kind(upstream, "powerinfer")
    sent = upstream.post(
        "/completion",
        body=stream_body(final("powerinfer", content="{}")),
        content_type="text/event-stream",
    )
    backend = make_backend()
    backend.complete(GenerationRequest(prompt="p", response_format=ResponseFormat("json_object")))
    assert json.loads(sent.calls[0].body)["grammar"].startswith("root ::= object")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    backend.complete(
        GenerationRequest(prompt="p", response_format=ResponseFormat("json_schema", schema))
    )
    assert '"\\"ok\\"" ws ":" ws boolean' in json.loads(sent.calls[1].body)["grammar"]
    with pytest.raises(InvalidRequestError) as info:
        backend.complete(
            GenerationRequest(
                prompt="p",
                response_format=ResponseFormat(
                    "json_schema", {"type": "array", "uniqueItems": True}
                ),
            )
        )
    assert info.value.param == "response_format.json_schema.schema"
    assert "'uniqueItems'" in info.value.message


@pytest.mark.parametrize(
    ("answer", "compiles"),
    [('"ok"', True), ("any text", False)],
    ids=["llama-server", "the-bundled-engine"],
)
def test_json_schema_on_current_servers(make_backend, upstream, answer, compiles):
    """A server whose /completion compiles json_schema gets it (asked once, by a schema whose
    one answer is "ok"); one that ignores it there gets the proxy's own grammar."""
    add_kind(upstream, "llamacpp")
    sent = upstream.post("/completion", json_body=final("llamacpp", content=answer))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    backend = make_backend()
    for _ in range(2):
        backend.complete(
            GenerationRequest(prompt="p", response_format=ResponseFormat("json_schema", schema))
        )
    probe, *asked = [json.loads(call.body) for call in sent.calls]
    assert probe["json_schema"] == {"const": "ok"} and len(asked) == 2
    for body in asked:
        assert (body.get("json_schema"), "grammar" in body) == (
            (schema, False) if compiles else (None, True)
        )


def test_current_logprobs_shape(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    entry = {
        "id": 5,
        "token": "Hi",
        "bytes": [72, 105],
        "logprob": -0.1,
        "top_logprobs": [
            {"id": 5, "token": "Hi", "bytes": [72, 105], "logprob": -0.1},
            {"id": 6, "token": "Yo", "bytes": [89, 111], "logprob": -2.5},
        ],
    }
    sent = upstream.post(
        "/completion", json_body=final("llamacpp", completion_probabilities=[entry])
    )
    result = make_backend().complete(GenerationRequest(prompt="p", logprobs=2))
    assert json.loads(sent.calls[0].body)["n_probs"] == 2
    (item,) = result.logprobs
    assert (item.token, item.logprob, item.bytes) == ("Hi", -0.1, (72, 105))
    assert [t for t, _, _ in item.top] == ["Hi", "Yo"]


def stream_body(*events: dict, prefix: str = "data") -> str:
    return "".join(f"{prefix}: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events)


def test_old_logprobs_are_collected_from_an_internal_stream(make_backend, upstream):
    add_kind(upstream, "powerinfer")
    partial = {
        "content": "Hi",
        "stop": False,
        "slot_id": 0,
        "multimodal": False,
        "completion_probabilities": [
            {
                "content": "Hi",
                "probs": [{"tok_str": "Hi", "prob": 0.5}, {"tok_str": "Yo", "prob": 0.25}],
            }
        ],
    }
    sent = upstream.post(
        "/completion",
        body=stream_body(partial, final("powerinfer", content="")),
        content_type="text/event-stream",
    )
    result = make_backend().complete(GenerationRequest(prompt="p", logprobs=1))
    assert json.loads(sent.calls[0].body)["stream"] is True
    (item,) = result.logprobs
    assert item.token == "Hi" and item.logprob == pytest.approx(-0.6931, abs=1e-4)
    assert [t for t, _, _ in item.top] == ["Hi"]


def test_utf8_split_across_network_pieces_is_decoded_whole():
    raw = stream_body({"content": "é€", "stop": False}, final("llamacpp", content="")).encode()
    cut = raw.index("€".encode()) + 1  # inside the euro sign
    lines = line_batches([raw[:cut], raw[cut:]])
    chunks = list(parse.stream_chunks(lines, "http://upstream.test", None))
    assert [c.text for c in chunks] == ["é€", ""]
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize(
    "reads,followed",
    [
        (["a", "b", "c"], [False, False, False]),  # one event per read: each goes out alone
        (["a b c"], [True, True, False]),  # one read: all but the last wait for the next
        (["a b", "c"], [True, False, False]),
        (["a :ping", "b"], [False, False]),  # a comment after an event is not a successor
    ],
)
def test_chunks_say_whether_the_next_arrived_with_them(reads, followed):
    def event(word):
        return ": ping\n\n" if word == ":ping" else stream_body({"content": word, "stop": False})

    pieces = ["".join(event(word) for word in read.split()).encode() for read in reads]
    pieces.append(f"data: {json.dumps(final('llamacpp', content=''))}\n\n".encode())
    chunks = list(parse.stream_chunks(line_batches(pieces), "http://upstream.test", None))
    assert [c.followed for c in chunks[:-1]] == followed
    assert chunks[-1].finish_reason and not chunks[-1].followed


@pytest.mark.parametrize(
    "kind,body,error",
    [
        ("llamacpp-2023", 'error: {"content":"slot unavailable"}\n\n', UpstreamUnavailableError),
        (
            "llamacpp",
            'data: {"content":"a","stop":false}\n\ndata: {"error":{"code":500,'
            '"message":"boom","type":"server_error"}}\n\n',
            UpstreamError,
        ),
        ("llamacpp", 'data: {"content":"a","stop":false}\n\n', UpstreamError),
        ("powerinfer", "", UpstreamUnavailableError),
        ("llamacpp", "data: not json\n\n", UpstreamError),
    ],
    ids=["b-busy", "c-midstream", "c-truncated", "a-empty-busy", "garbage"],
)
def test_stream_errors(make_backend, upstream, kind, body, error):
    add_kind(upstream, kind)
    upstream.post("/completion", body=body, content_type="text/event-stream")
    with pytest.raises(error):
        list(make_backend().stream(GenerationRequest(prompt="p")))


def test_keepalive_comments_are_ignored(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    upstream.post(
        "/completion",
        content_type="text/event-stream",
        body=":\n\n" + stream_body({"content": "a", "stop": False}, final("llamacpp")),
    )
    chunks = list(make_backend().stream(GenerationRequest(prompt="p")))
    assert [c.text for c in chunks] == ["a", "Hi!"]


@pytest.mark.parametrize(
    "status,body,error",
    [
        (404, "File Not Found", UpstreamUnavailableError),
        (
            503,
            '{"error":{"message":"Loading model","type":"unavailable_error","code":503}}',
            UpstreamUnavailableError,
        ),
        (500, "oops", UpstreamError),
        (
            400,
            '{"error":{"code":400,"message":"too long","type":"exceed_context_size_error"}}',
            InvalidRequestError,
        ),
        (200, "<html>", UpstreamError),
    ],
    ids=["a-busy-404", "c-loading", "500", "context", "garbage"],
)
def test_http_errors(make_backend, upstream, status, body, error):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", status=status, body=body)
    with pytest.raises(error):
        make_backend().complete(GenerationRequest(prompt="p"))


def test_unreachable():
    nowhere = f"http://127.0.0.1:{free_port()}"
    backend = backend_of(nowhere)
    with pytest.raises(UpstreamUnavailableError) as info:
        backend.complete(GenerationRequest(prompt="p"))
    backend.close()
    assert info.value.retry_after
    assert nowhere not in info.value.message and info.value.detail == f"upstream {nowhere}"


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023", "llamacpp"])
def test_a_stream_failing_midway_names_its_upstream_for_the_log(kind):
    with FakeServerCpp(kind, fail_mode="truncated_stream") as fake:
        backend = backend_of(fake.url)
        with pytest.raises(UpstreamError) as info:
            list(backend.stream(GenerationRequest(prompt="p")))
        backend.close()
    assert fake.url not in info.value.message and info.value.detail == f"upstream {fake.url}"


def test_timeout(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body=final("llamacpp"), delay=1.0)
    with pytest.raises(UpstreamTimeoutError):
        make_backend(read_timeout=0.2).complete(GenerationRequest(prompt="p"))


def test_tokenize_flag_returns_prompt_token_ids(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body=final("llamacpp"))
    upstream.post(
        "/tokenize", json_body={"tokens": [{"id": 1, "piece": "a"}, {"id": 2, "piece": "b"}]}
    )
    result = make_backend().complete(GenerationRequest(prompt="ab", tokenize=True))
    assert result.prompt_token_ids == (1, 2)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("content", "text", "calls"),
    [
        pytest.param(
            'Let me see. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
            "</tool_call>",
            "Let me see. ",
            [("get_weather", {"city": "Oslo"})],
            id="call",
        ),
        pytest.param("It is sunny.", "It is sunny.", [], id="no-call"),
        pytest.param(
            '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
            '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
            [],
            id="malformed-stays-text",
        ),
        pytest.param(
            '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
            '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
            [],
            id="unknown-tool-stays-text",
        ),
    ],
)
def test_tools_reach_the_prompt_and_calls_come_back(make_backend, upstream, content, text, calls):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body=final("llamacpp", content=content))
    result = make_backend().complete(
        GenerationRequest(messages=(Message("user", "weather in Oslo?"),), tools=(WEATHER,))
    )
    prompt = json.loads(upstream.calls[-1].body)["prompt"]
    assert "<tool_call>" in prompt and '"name":"get_weather"' in prompt
    assert result.text == text
    assert [(call.name, json.loads(call.arguments)) for call in result.tool_calls] == calls
    assert result.finish_reason == ("tool_calls" if calls else "stop")
    assert all(call.id.startswith("call_") for call in result.tool_calls)


@pytest.mark.parametrize(
    ("body", "cached"),
    [
        pytest.param(
            {"tokens_evaluated": 30, "timings": {"cache_n": 24, "prompt_n": 6}},
            24,
            id="current-counts-the-cache",
        ),
        pytest.param({"tokens_evaluated": 30, "timings": {"prompt_n": 6}}, 24, id="old-evaluated"),
        pytest.param({"tokens_evaluated": 30, "timings": {"prompt_n": 31}}, 0, id="old-all-new"),
        pytest.param({"tokens_evaluated": 30}, None, id="no-timings"),
        pytest.param(
            {"tokens_evaluated": 30, "timings": {"prompt_n": True}}, None, id="not-a-count"
        ),
    ],
)
def test_cached_prompt_tokens_come_from_the_servers_timings(body, cached):
    usage = parse.usage(body)
    assert usage.cached_tokens == cached
    assert usage.prompt_tokens == 30


# -- reasoning ----------------------------------------------------------------------------

THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)
SAYS_THINKS = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}{# <think> #}"
)


@pytest.mark.parametrize(
    ("template", "content", "reasoning", "expected"),
    [
        pytest.param(
            THINKING_TEMPLATE,
            "Hmm.\n</think>\n\nHi!",
            "auto",
            ("Hmm.", "Hi!"),
            id="the-template-opens-the-block",
        ),
        pytest.param(
            SAYS_THINKS, "<think>Hmm.</think>Hi!", "auto", ("Hmm.", "Hi!"), id="the-model-opens-it"
        ),
        pytest.param(
            SAYS_THINKS,
            "<think>Hmm.</think>Hi!",
            "none",
            ("", "<think>Hmm.</think>Hi!"),
            id="told-not-to",
        ),
        pytest.param(
            "historic",
            "<think>Hmm.</think>Hi!",
            "auto",
            ("", "<think>Hmm.</think>Hi!"),
            id="a-template-without-tags",
        ),
        pytest.param(
            "historic", "<think>Hmm.</think>Hi!", "think-tags", ("Hmm.", "Hi!"), id="told-to"
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_thoughts_are_told_from_the_answer(
    make_backend, upstream, tmp_path, template, content, reasoning, expected, stream
):
    if template != "historic":
        path = tmp_path / "template.jinja"
        path.write_text(template)
        template = str(path)
    add_kind(upstream, "llamacpp")
    upstream.post("/tokenize", json_body={"tokens": [5, 6, 7]})  # the thoughts' tokens
    backend = make_backend(template, reasoning=reasoning)
    if stream:
        events = [{"content": piece, "stop": False} for piece in content]  # a character each
        events.append(final("llamacpp", content=""))
        upstream.post(
            "/completion",
            content_type="text/event-stream",
            body="".join(f"data: {json.dumps(e)}\n\n" for e in events),
        )
        chunks = list(backend.stream(CHAT))
        found = ("".join(c.reasoning for c in chunks), "".join(c.text for c in chunks))
        usage = chunks[-1].usage
    else:
        upstream.post("/completion", json_body=final("llamacpp", content=content))
        answer = backend.complete(CHAT)
        found = (answer.reasoning, answer.text)
        usage = answer.usage
    assert found == expected
    assert usage.reasoning_tokens == (
        3
        if expected[0]
        else None
        if reasoning == "none" or template == "historic" and reasoning == "auto"
        else 0
    )


def test_a_raw_prompt_keeps_its_thoughts(make_backend, upstream, tmp_path):
    path = tmp_path / "template.jinja"
    path.write_text(SAYS_THINKS)
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body=final("llamacpp", content="<think>x</think>y"))
    answer = make_backend(str(path)).complete(GenerationRequest(prompt="p"))
    assert (answer.reasoning, answer.text) == ("", "<think>x</think>y")


def test_the_stop_word_that_ended_the_answer_is_told(make_backend, upstream):
    add_kind(upstream, "llamacpp")
    upstream.post("/completion", json_body=final("llamacpp", stop_type="word", stopping_word="END"))
    assert make_backend().complete(CHAT).stop_sequence == "END"


@pytest.mark.parametrize("field", ["slot_id", "id_slot"])
def test_a_streams_first_chunk_names_the_slot_answering_it(field):
    partials = [{"content": word, "stop": False, field: 2} for word in ("a", "b")]
    raw = stream_body(*partials, final("llamacpp", content="")).encode()
    first, second, _ = parse.stream_chunks(line_batches([raw]), "http://upstream.test", None)
    assert (first.slot, second.slot) == (2, None)  # read once, for admission


UNASKED_CHAT = GenerationRequest(messages=(Message("user", "hi"),), model="m")
UNASKED_PROMPT = GenerationRequest(prompt="p", model="m")
LAYER = {"prompt": "user: hi\nassistant: oai-proxy probe value"}  # a template with tool syntax
WHOLE_CHAT = {
    "choices": [{"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
}


@pytest.mark.parametrize(
    "kind, n_ctx, request_, path, told",
    [
        # an old server: what its prompt (20 tokens and its BOS) leaves of its slot, less two
        ("powerinfer", 512, UNASKED_CHAT, "/completion", {"n_predict": 512 - 21 - 2}),
        ("llamacpp-2023", 512, UNASKED_PROMPT, "/completion", {"n_predict": 489}),
        # a current server: its context, on either route
        ("llamacpp", 4096, UNASKED_PROMPT, "/completion", {"n_predict": 4096}),
        ("llamacpp", 4096, UNASKED_CHAT, "/v1/chat/completions", {"max_tokens": 4096}),
        # a context not known: nothing told, as before
        ("powerinfer", None, UNASKED_CHAT, "/completion", {}),
        ("llamacpp", None, UNASKED_CHAT, "/v1/chat/completions", {}),
    ],
    ids=["powerinfer-chat", "2023-prompt", "current-prompt", "current-chat-layer",
         "old-unknown", "current-unknown"],
)  # fmt: skip
def test_an_answer_that_sets_no_length_is_told_one(
    make_backend, upstream, kind, n_ctx, request_, path, told
):
    settings = {"n_ctx": n_ctx} if n_ctx else {}
    add_kind(upstream, kind, default_generation_settings=settings)
    if kind == "llamacpp":
        upstream.post("/apply-template", json_body=LAYER)
        upstream.post("/completion", json_body=final(kind))
        sent = upstream.post(path, json_body=WHOLE_CHAT if path != "/completion" else final(kind))
    else:
        upstream.get("/model.json", json_body={"model": "/m/tiny.gguf", **settings})
        sent = upstream.post(
            path, content_type="text/event-stream", body=stream_body(final(kind, content="Hi!"))
        )
    assert make_backend("auto").complete(request_).text == "Hi!"
    body = json.loads(sent.calls[0].body)
    assert {name: body[name] for name in ("n_predict", "max_tokens") if name in body} == told


def test_an_old_servers_prompt_is_counted_once_for_its_bound_and_its_first_chunk(
    make_backend, upstream
):
    add_kind(upstream, "powerinfer")
    counted = upstream.post("/tokenize", json_body={"tokens": [9] * 20})
    upstream.post(
        "/completion",
        content_type="text/event-stream",
        body=stream_body({"content": "Hi!", "stop": False, "slot_id": 0}, final("powerinfer")),
    )
    first = next(iter(make_backend().stream(UNASKED_CHAT)))
    assert (first.text, first.prompt_count, len(counted.calls)) == ("Hi!", 21, 1)


def test_a_prompt_that_leaves_an_old_server_no_room_for_an_answer_is_refused(
    make_backend, upstream
):
    add_kind(upstream, "llamacpp-2023")
    upstream.post("/tokenize", json_body={"tokens": [9] * 507})  # 508 with its BOS, of 512
    sent = upstream.post("/completion", content_type="text/event-stream", body="")
    with pytest.raises(ContextLengthError) as refused:
        make_backend().complete(UNASKED_PROMPT)
    assert (refused.value.prompt_tokens, refused.value.limit, sent.calls) == (508, 512, [])
