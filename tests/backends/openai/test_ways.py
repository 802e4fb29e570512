"""Which way each request takes to an OpenAI-compatible upstream, and what each way decides:
a chat to the chat route, a raw prompt to the legacy completions, each refused by a route
the upstream is known to lack and by the fields OpenAI's API has no place for."""

from __future__ import annotations

import pytest

from proxy.backends.openai.backend import OpenAIBackend
from proxy.backends.openai.payload import chat_body, prompt_body
from proxy.backends.openai.ways import ChatWay, PromptWay
from proxy.backends.wire.client import UpstreamClient
from proxy.config.catalog import Filters
from proxy.core.answers import Completion, Usage
from proxy.core.errors import NotImplementedByBackendError
from proxy.core.types import GenerationRequest, Message, ResponseFormat, Verbatim
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.processes import free_port

LABEL = "the server of model 'big'"
CHAT = GenerationRequest(messages=(Message("user", "hi"),), max_tokens=4)
PROMPT = GenerationRequest(prompt="Once upon", max_tokens=4)
GRAMMAR = GenerationRequest(messages=CHAT.messages, grammar="root ::= x")


@pytest.fixture
def make():
    made = []

    def backend(filters: Filters = Filters(), endpoints=()) -> OpenAIBackend:
        client = UpstreamClient(f"http://127.0.0.1:{free_port()}", label=LABEL, public_api=True)
        admission = Admission(LABEL, SlotCount(), max_queue=4, queue_timeout=0.5)
        made.append(
            OpenAIBackend(
                client, admission, "big", "Qwen/Qwen3", filters=filters, endpoints=endpoints
            )
        )
        return made[-1]

    yield backend
    for backend in made:
        backend.close()


@pytest.mark.parametrize(
    ("request_", "way", "path"),
    [
        pytest.param(CHAT, ChatWay, "/chat/completions", id="a-chat"),
        pytest.param(PROMPT, PromptWay, "/completions", id="a-raw-prompt"),
        pytest.param(
            GenerationRequest(messages=CHAT.messages, verbatim=Verbatim("anthropic", {})),
            ChatWay,
            "/chat/completions",
            id="a-messages-clients-body-is-translated",
        ),
    ],
)
def test_each_request_takes_its_way(make, request_, way, path):
    taken = make().way(request_)
    assert type(taken) is way and taken.path == path


@pytest.mark.parametrize(
    ("request_", "filters", "endpoints", "refused", "unsent"),
    [
        pytest.param(CHAT, Filters(), (), None, [], id="a-chat"),
        pytest.param(GRAMMAR, Filters(), (), "grammar", ["grammar"], id="no-place-for-it"),
        pytest.param(
            GRAMMAR, Filters(strip=("grammar",)), (), None, ["grammar"], id="stripped-not-refused"
        ),
        pytest.param(
            GenerationRequest(prompt="Once", response_format=ResponseFormat("json_object")),
            Filters(),
            (),
            "response_format",
            [],
            id="a-raw-prompts-response-format",
        ),
        pytest.param(CHAT, Filters(), ("completions",), "model", [], id="a-chat-not-served"),
        pytest.param(PROMPT, Filters(), ("chat",), "prompt", [], id="a-raw-prompt-not-served"),
        pytest.param(  # the route first: no field matters on a route the upstream lacks
            GRAMMAR, Filters(), ("embeddings",), "model", ["grammar"], id="the-route-first"
        ),
    ],
)
def test_what_each_way_decides(make, request_, filters, endpoints, refused, unsent):
    way = make(filters, endpoints).way(request_)
    problem = way.refusal()
    assert (problem and problem.param) == refused
    assert list(way.unsent()) == unsent
    assert way.filled() == () and way.count_path == ""


def test_each_way_writes_its_body_and_reads_its_answer(make):
    backend = make()
    assert backend.way(CHAT).body(stream=True) == chat_body(CHAT, "Qwen/Qwen3", stream=True)
    assert backend.way(PROMPT).body(stream=False) == prompt_body(PROMPT, "Qwen/Qwen3", stream=False)
    usage = {"prompt_tokens": 3, "completion_tokens": 2}
    said = {"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}], "usage": usage}
    completed = {"choices": [{"text": " a time", "finish_reason": "stop"}], "usage": usage}
    assert backend.way(CHAT).whole(said) == Completion("Hi", "stop", Usage(3, 2))
    assert backend.way(PROMPT).whole(completed) == Completion(" a time", "stop", Usage(3, 2))


def test_no_way_counts_tokens(make):
    with pytest.raises(NotImplementedByBackendError, match="the openai backend cannot count"):
        make().count_tokens(CHAT)
