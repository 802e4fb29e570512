"""The openai backend against a server answering over real HTTP: raw prompts, embeddings and
reranking on their routes under the upstream's name for the model; a route the server
lacks named for the client, remembered, and left out of the model's card."""

from __future__ import annotations

import json

import pytest

from proxy.backends.openai.backend import OpenAIBackend
from proxy.backends.wire import untold
from proxy.backends.wire.client import UpstreamClient
from proxy.core.answers import Completion, Embeddings, Ranking, Usage
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError, UpstreamError
from proxy.core.types import GenerationRequest, Message
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.fakes.canned import CannedServer

LABEL = "the server of model 'big'"
PROMPT = GenerationRequest(prompt="Once upon", max_tokens=4)
CHAT = GenerationRequest(messages=(Message("user", "hi"),))
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
NOT_SUPPORTED = {"error": {"code": 501, "message": "no embeddings", "type": "not_supported_error"}}


@pytest.fixture
def upstream():
    with CannedServer() as server:
        yield server


@pytest.fixture
def make(upstream):
    made = []

    def backend(endpoints=()) -> OpenAIBackend:
        client = UpstreamClient(upstream.url + "/v1", label=LABEL, public_api=True)
        admission = Admission(LABEL, SlotCount(), max_queue=4, queue_timeout=0.5)
        made.append(OpenAIBackend(client, admission, "big", "Qwen/Qwen3-32B", endpoints=endpoints))
        return made[-1]

    yield backend
    for backend in made:
        backend.close()


def sent(canned) -> list:
    return [json.loads(call.body) for call in canned.calls]


def capabilities(backend: OpenAIBackend) -> tuple:
    return backend.models()[0].card.capabilities


def test_a_raw_prompt_goes_to_the_completions_route_whole_and_streamed(make, upstream):
    backend = make()
    whole = upstream.post(
        "/v1/completions",
        json_body={"choices": [{"text": " a time", "finish_reason": "stop"}], "usage": USAGE},
    )
    assert backend.complete(PROMPT) == Completion(" a time", "stop", Usage(3, 2))
    events = [
        {"choices": [{"text": " a", "finish_reason": None}]},
        {"choices": [{"text": " time", "finish_reason": "stop"}]},
        {"choices": [], "usage": USAGE},
    ]
    upstream.post(
        "/v1/completions",
        body="".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n",
        content_type="text/event-stream",
        chunks=3,
    )
    chunks = list(backend.stream(PROMPT))
    assert "".join(chunk.text for chunk in chunks) == " a time"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage == Usage(3, 2)
    assert sent(whole)[0] == {
        "model": "Qwen/Qwen3-32B",
        "prompt": "Once upon",
        "stream": False,
        "max_tokens": 4,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_route_the_server_lacks_is_named_and_not_asked_again(make, upstream, stream):
    backend = make()  # nothing armed: the server answers 404 File Not Found, as llama.cpp's

    def ask() -> None:
        if stream:
            list(backend.stream(PROMPT))
        else:
            backend.complete(PROMPT)

    for _ in range(2):
        with pytest.raises(InvalidRequestError) as refused:
            ask()
        assert refused.value.param == "prompt"
        assert refused.value.message == (
            f"prompt cannot be served: the model 'big' takes no raw prompt ({LABEL} has no "
            f"/completions (it answered 404: File Not Found)); send messages"
        )
    assert [call.path for call in upstream.calls] == ["/v1/completions"]
    assert capabilities(backend) == ("completion", "tools")  # it chats all the same


def test_embeddings_go_under_the_upstreams_name_and_then_show_on_the_card(make, upstream):
    backend = make()
    assert capabilities(backend) == ("completion", "tools")
    canned = upstream.post(
        "/v1/embeddings",
        json_body={
            "data": [{"index": 0, "embedding": [0.5, 0.25]}],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        },
    )
    assert backend.embed(["a cat"]) == Embeddings(([0.5, 0.25],), 2)
    assert sent(canned) == [
        {"model": "Qwen/Qwen3-32B", "input": ["a cat"], "encoding_format": "float"}
    ]
    assert capabilities(backend) == ("completion", "tools", "embedding")


def test_a_server_without_embeddings_is_a_501_naming_the_model_and_remembered(make, upstream):
    backend = make()
    canned = upstream.post("/v1/embeddings", status=501, json_body=NOT_SUPPORTED)
    for _ in range(2):
        with pytest.raises(NotImplementedByBackendError) as refused:
            backend.embed(["a"])
        assert refused.value.message.startswith(
            f"the model 'big' has no embeddings: {LABEL} has no /embeddings (it answered 501"
        )
    assert len(canned.calls) == 1


def test_reranking_asks_for_every_score_under_the_upstreams_name(make, upstream):
    backend = make()
    canned = upstream.post(
        "/v1/rerank",
        json_body={
            "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
            "usage": {"prompt_tokens": 9},
        },
    )
    assert backend.rerank("q", ["a", "b"]) == Ranking(((1, 0.9), (0, 0.1)), 9)
    assert sent(canned) == [
        {"model": "Qwen/Qwen3-32B", "query": "q", "documents": ["a", "b"], "top_n": 2}
    ]
    assert capabilities(backend) == ("completion", "tools", "rerank")


def test_declared_endpoints_refuse_the_others_before_anything_is_sent(make, upstream):
    backend = make(("embeddings",))
    assert capabilities(backend) == ("embedding",)
    with pytest.raises(InvalidRequestError) as refused:
        backend.complete(CHAT)
    assert refused.value.param == "model"
    assert refused.value.message == (
        "the model 'big' does not chat: the models file gives its endpoints as embeddings"
    )
    with pytest.raises(InvalidRequestError, match="does not rerank"):
        backend.rerank("q", ["a"])
    assert upstream.calls == []


def test_a_model_the_server_does_not_know_is_the_servers_error_not_a_missing_route(make, upstream):
    backend = make()
    upstream.post(
        "/v1/chat/completions",
        status=404,
        json_body={"error": {"message": "The model does not exist", "code": "model_not_found"}},
    )
    for _ in range(2):  # tried again: the operator may fix the name the upstream knows
        with pytest.raises(UpstreamError) as failed:
            backend.complete(CHAT)
        assert failed.value.status == 502 and "The model does not exist" in failed.value.message
    assert len(upstream.calls) == 2


def sse(events: list) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


UNTOLD_STREAM = [
    {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
    {"choices": [{"delta": {"content": "I'm"}, "finish_reason": None}]},
    {"choices": [{"delta": {"content": " here"}, "finish_reason": None}]},
    {"choices": [{"delta": {}, "finish_reason": "length"}]},
]
COUNTED = {"choices": [{"message": {"content": "I"}, "finish_reason": "length"}],
           "usage": {"prompt_tokens": 32, "completion_tokens": 1, "total_tokens": 33}}  # fmt: skip


@pytest.mark.parametrize(
    ("probe", "prompt"),
    [(COUNTED, 32), ({"choices": []}, 1 + untold.TEMPLATE_MESSAGE + untold.TEMPLATE_REQUEST)],
)
def test_a_stream_without_usage_is_charged_its_prompt_as_the_engine_counts_it(
    make, upstream, probe, prompt
):
    """The stream's pieces estimate the answer; its prompt is the server's count (the same
    request whole and one token long), else an estimate too."""
    canned = upstream.post(
        "/v1/chat/completions", body=sse(UNTOLD_STREAM), content_type="text/event-stream",
        whole=probe,
    )  # fmt: skip
    chunks = list(make().stream(CHAT))
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.how) == (prompt, 2, "estimated")
    (streamed,), (asked,) = sent(canned), sent(canned.whole)
    del streamed["stream_options"]
    assert asked == {**streamed, "stream": False, "max_tokens": 1}


def test_an_empty_stream_is_asked_whole_for_its_reason(make, upstream):
    """A server that ends a stream before its first event (llama-cpp-python's on a prompt
    too long) says why when asked the same whole: the client gets that reason."""
    too_long = {"error": {"message": "This model's maximum context length is 1024 tokens. "
                         "However, you requested 1535 tokens (1531 in the messages, 4 in the "
                         "completion).", "type": "invalid_request_error", "param": "messages",
                         "code": "context_length_exceeded"}}  # fmt: skip
    upstream.post("/v1/chat/completions", body="", content_type="text/event-stream")
    with pytest.raises(UpstreamError):
        list(make().stream(CHAT))
    canned = upstream.post("/v1/chat/completions", body="", content_type="text/event-stream")
    canned.whole = type(canned)(400, json.dumps(too_long).encode(), "application/json")
    with pytest.raises(InvalidRequestError) as error:
        list(make().stream(CHAT))
    assert error.value.code == "context_length_exceeded" and "1024" in error.value.message
