"""Which way each request takes to a Messages API server, and what each way decides: a chat
of another API translated, refused by the fields the API has no place for; a Messages
client's own body sent on as it wrote it, refused nothing, its answer passed back as the
server wrote it and its prompt counted by the server."""

from __future__ import annotations

import pytest

from proxy.backends.anthropic.backend import AnthropicBackend
from proxy.backends.anthropic.payload import DEFAULT_MAX_TOKENS, messages_body
from proxy.backends.anthropic.ways import TranslatedWay, VerbatimWay
from proxy.backends.wire.client import UpstreamClient
from proxy.config.catalog import Filters
from proxy.core.answers import Chunk, Completion, Usage
from proxy.core.errors import InvalidRequestError
from proxy.core.events import Passed
from proxy.core.types import GenerationRequest, Message, Verbatim
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.processes import free_port

from .test_messages import events

LABEL = "the server of model 'messages'"
HI = (Message("user", "Hi"),)
CLIENTS_OWN = {
    "model": "cloud",
    "max_tokens": 64,
    "metadata": {"user_id": "u-1"},
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "greet", "signature": "sig-from-upstream"},
                {"type": "text", "text": "Hello"},
            ],
        },
        {"role": "user", "content": [{"type": "document", "source": {"type": "file", "id": "f"}}]},
    ],
    "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    "a_field_from_next_year": True,
}
OWN = Verbatim("anthropic", CLIENTS_OWN)
# a chat the Messages API has no field for, translated: refused by the name the client gave
THINKING = GenerationRequest(messages=HI, template_kwargs={"enable_thinking": True})
ANSWER = {
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1},
    "a_field_from_next_year": {"kept": True},
}


@pytest.fixture
def make():
    made = []

    def backend(filters: Filters = Filters()) -> AnthropicBackend:
        client = UpstreamClient(f"http://127.0.0.1:{free_port()}", label=LABEL, public_api=True)
        admission = Admission(LABEL, SlotCount(), max_queue=4, queue_timeout=0.5)
        made.append(AnthropicBackend(client, admission, "messages", "claude-x", filters))
        return made[-1]

    yield backend
    for backend in made:
        backend.close()


@pytest.mark.parametrize(
    ("request_", "way"),
    [
        pytest.param(GenerationRequest(messages=HI), TranslatedWay, id="a-chat-of-another-api"),
        pytest.param(GenerationRequest(prompt="Once"), TranslatedWay, id="a-raw-prompt"),
        pytest.param(GenerationRequest(messages=HI, verbatim=OWN), VerbatimWay, id="own-body"),
        pytest.param(
            GenerationRequest(
                messages=(),
                verbatim=Verbatim("anthropic", CLIENTS_OWN, InvalidRequestError("document")),
            ),
            VerbatimWay,
            id="own-body-the-proxy-could-not-translate",
        ),
        pytest.param(
            GenerationRequest(messages=HI, verbatim=Verbatim("openai", {"messages": []})),
            TranslatedWay,
            id="another-apis-own-body",
        ),
    ],
)
def test_each_request_takes_its_way(make, request_, way):
    assert type(make().way(request_)) is way


@pytest.mark.parametrize(
    ("request_", "filters", "refused", "unsent", "filled", "count_path"),
    [
        pytest.param(
            THINKING,
            Filters(),
            "chat_template_kwargs",
            ["chat_template_kwargs"],
            ("max_tokens",),
            "",
            id="translated",
        ),
        pytest.param(
            THINKING,
            Filters(strip=("chat_template_kwargs",)),
            None,
            ["chat_template_kwargs"],
            ("max_tokens",),
            "",
            id="translated-what-the-operator-strips-is-left-out",
        ),
        pytest.param(
            GenerationRequest(prompt="Once"),
            Filters(),
            "prompt",
            [],
            ("max_tokens",),
            "",
            id="translated-raw-prompt",
        ),
        pytest.param(
            GenerationRequest(messages=HI, template_kwargs={"enable_thinking": True}, verbatim=OWN),
            Filters(),
            None,
            [],
            (),
            "/v1/messages/count_tokens",
            id="verbatim-the-server-judges",
        ),
    ],
)
def test_what_each_way_decides(make, request_, filters, refused, unsent, filled, count_path):
    way = make(filters).way(request_)
    problem = way.refusal()
    assert (problem and problem.param) == refused
    assert list(way.unsent()) == unsent
    assert way.filled() == filled
    assert (way.path, way.count_path) == ("/v1/messages", count_path)


def test_a_clients_own_body_goes_on_as_it_wrote_it_and_a_translation_as_the_api_writes_it(make):
    backend = make()
    verbatim = backend.way(GenerationRequest(messages=HI, verbatim=OWN))
    assert verbatim.body(stream=True) == {**CLIENTS_OWN, "model": "claude-x", "stream": True}
    assert verbatim.count_body() == {**CLIENTS_OWN, "model": "claude-x"}  # no stream to count
    assert CLIENTS_OWN["model"] == "cloud"  # the client's body itself is left as it was
    chat = GenerationRequest(messages=HI)
    assert backend.way(chat).body(stream=False) == messages_body(chat, "claude-x", stream=False)
    assert backend.way(chat).body(stream=False)["max_tokens"] == DEFAULT_MAX_TOKENS


def test_a_verbatim_answer_comes_back_as_the_server_wrote_it_and_is_read_all_the_same(make):
    backend = make()
    read = Completion("Hi", "stop", Usage(3, 1))
    assert backend.way(GenerationRequest(messages=HI)).whole(ANSWER) == read
    whole = backend.way(GenerationRequest(messages=HI, verbatim=OWN)).whole(ANSWER)
    assert whole.verbatim is ANSWER and whole.text == "Hi" and whole.usage == Usage(3, 1)
    assert (
        backend.way(GenerationRequest(messages=HI, verbatim=OWN)).counted({"input_tokens": 7}) == 7
    )


@pytest.mark.parametrize(("verbatim", "passed"), [(None, False), (OWN, True)])
def test_a_stream_is_passed_on_line_by_line_only_the_verbatim_way(make, verbatim, passed):
    lines = events(
        {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop"},
    )
    way = make().way(GenerationRequest(messages=HI, verbatim=verbatim))
    told = list(way.chunks(lines))
    assert any(type(each) is Passed for each in told) is passed
    chunks = [each for each in told if type(each) is Chunk]
    assert "".join(chunk.text for chunk in chunks) == "Hi"
    assert chunks[-1].finish_reason == "stop"
