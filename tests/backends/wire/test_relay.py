"""The relay asks its backend once per request for the request's way, and from then on asks
the way alone: what it refuses, where it goes, its body, the fields the model's filters
name, its answer read whole or streamed, its count. Shown with a way of the test's own over
real HTTP: a new way of sending is one class, and the relay needs nothing else."""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

import pytest

from proxy.backends.wire.client import UpstreamClient
from proxy.backends.wire.relay import Relay
from proxy.backends.wire.way import Way
from proxy.config.catalog import Filters
from proxy.core.answers import Chunk, Completion, Served, Usage
from proxy.core.errors import InvalidRequestError, ProxyError
from proxy.core.types import GenerationRequest, Message
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.fakes.canned import CannedServer

LABEL = "the echo server"
HI = GenerationRequest(messages=(Message("user", "hi"),))


class Echo(Way):
    """A way of the test's own: the last message as ``say``, a limit always filled, and a
    ``grammar`` it has no place for."""

    path = "/echo"
    count_path = "/count"

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request

    def refusal(self) -> Optional[ProxyError]:
        if self.request.grammar == "refused":
            return InvalidRequestError("no grammar here", param="grammar")
        return None

    def unsent(self) -> Iterable[str]:
        return ("grammar",) if self.request.grammar is not None else ()

    def filled(self) -> tuple:
        return ("limit",)

    def body(self, *, stream: bool) -> dict:
        return {"say": self.request.messages[-1].content, "limit": 8, "stream": stream}

    def whole(self, answer: object) -> Completion:
        return Completion(answer["said"], "stop", Usage(1, 1))

    def chunks(self, lines: Iterable[list]) -> Iterator:
        for read in lines:
            for line in read:
                if line.startswith(b"data:"):
                    yield Chunk(text=json.loads(line[5:])["said"])

    def count_body(self) -> dict:
        return {"say": self.request.messages[-1].content}

    def counted(self, answer: object) -> int:
        return answer["tokens"]


class Echoing(Relay):
    """A relay whose every request goes the :class:`Echo` way, each way it makes kept."""

    name = "echo"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ways: list = []

    def way(self, request: GenerationRequest) -> Way:
        self.ways.append(Echo(request))
        return self.ways[-1]


@pytest.fixture
def upstream():
    with CannedServer() as server:
        yield server


@pytest.fixture
def make(upstream):
    made = []

    def relay(filters: Filters = Filters()) -> Echoing:
        client = UpstreamClient(upstream.url, label=LABEL, public_api=True)
        admission = Admission(LABEL, SlotCount(), max_queue=4, queue_timeout=0.5)
        made.append(Echoing(client, admission, "echo", "echo-1", filters))
        return made[-1]

    yield relay
    for relay in made:
        relay.close()


def complete(relay: Echoing, request: GenerationRequest) -> tuple:
    completion = relay.complete(request)
    return completion.text, completion.served


def stream(relay: Echoing, request: GenerationRequest) -> tuple:
    told = list(relay.stream(request))
    served = told.pop(0) if told and type(told[0]) is Served else None
    return "".join(chunk.text for chunk in told), served


def arm(upstream: CannedServer, ask=complete) -> None:
    """The server's answers: ``hi``, whole or streamed as ``ask`` asks; a count of 5."""
    if ask is stream:
        upstream.post("/echo", body='data: {"said": "hi"}\n\n', content_type="text/event-stream")
    else:
        upstream.post("/echo", json_body={"said": "hi"})
    upstream.post("/count", json_body={"tokens": 5})


@pytest.mark.parametrize("ask", [complete, stream], ids=["whole", "streamed"])
def test_a_generation_asks_for_its_way_once_and_the_way_alone_after(make, upstream, ask):
    arm(upstream, ask)
    relay = make()
    assert ask(relay, HI) == ("hi", None)
    assert len(relay.ways) == 1
    assert [(call.path, json.loads(call.body)) for call in upstream.calls] == [
        ("/echo", {"say": "hi", "limit": 8, "stream": ask is stream})
    ]


@pytest.mark.parametrize("ask", [complete, stream], ids=["whole", "streamed"])
def test_the_filters_name_what_the_way_says_the_request_gave(make, upstream, ask):
    arm(upstream, ask)
    relay = make(Filters(strip=("grammar", "limit", "say"), set=(("limit", 2),)))
    request = GenerationRequest(messages=HI.messages, grammar="root ::= x")
    # the grammar has no place in the body, the limit is the way's own: the say was given
    assert ask(relay, request) == ("hi", Served("", False, ("grammar", "say"), ()))
    assert json.loads(upstream.calls[-1].body) == {"stream": ask is stream, "limit": 2}


@pytest.mark.parametrize("ask", [complete, stream], ids=["whole", "streamed"])
def test_what_the_way_refuses_is_sent_nowhere(make, upstream, ask):
    relay = make()
    with pytest.raises(InvalidRequestError, match="no grammar here"):
        ask(relay, GenerationRequest(messages=HI.messages, grammar="refused"))
    assert len(relay.ways) == 1 and upstream.calls == []


def test_a_count_asks_for_its_way_once_and_goes_where_it_says(make, upstream):
    arm(upstream)
    relay = make()
    assert relay.count_tokens(HI) == 5 and len(relay.ways) == 1
    assert [(call.path, json.loads(call.body)) for call in upstream.calls] == [
        ("/count", {"say": "hi"})
    ]
