"""The core: a backend's chunks become one event stream, in lists of what arrived together;
prompts are counted once per prompt; a slow first event is preceded by WAITING."""

from __future__ import annotations

import itertools
import threading

import pytest

from proxy.core import generation
from proxy.core.answers import Chunk, ToolCallPiece, Usage, pieces
from proxy.core.caller import Caller
from proxy.core.errors import UpstreamError, UpstreamUnavailableError
from proxy.core.events import (
    WAITING,
    Finish,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageReport,
)
from proxy.core.meanwhile import Helpers
from proxy.core.types import GenerationRequest, ToolCall
from proxy.ops.measure import Measure
from tests.fakes.backend import FakeBackend

CHAT = GenerationRequest(messages=())


class ScriptedBackend(FakeBackend):
    """Streams the chunks it is given, then fails with ``error`` if set."""

    def __init__(self, chunks, error=None, **kwargs):
        super().__init__(**kwargs)
        self.chunks = chunks
        self.failure = error

    def stream(self, request):
        yield from self.chunks
        if self.failure is not None:
            raise self.failure


def kinds(batches):
    return [[type(event).__name__ for event in batch] for batch in batches]


def test_chunks_read_together_become_one_list_of_events():
    backend = ScriptedBackend(
        [
            Chunk("a", followed=True),
            Chunk("b", followed=True),
            Chunk("c"),
            Chunk("d"),
            Chunk("", finish_reason="stop", usage=Usage(3, 4)),
        ]
    )
    batches = list(generation.stream(backend, [CHAT]))
    assert [[event.text for event in batch if type(event) is TextDelta] for batch in batches] == [
        ["a", "b", "c"],
        ["d"],
        [],
    ]
    assert kinds(batches)[-1] == ["UsageReport", "Finish"]
    assert batches[-1][0].usage == Usage(3, 4) and batches[-1][1].reason == "stop"


def test_a_chunk_without_events_sends_nothing_of_its_own():
    backend = ScriptedBackend(
        [
            Chunk("a", followed=True),
            Chunk("", followed=True),
            Chunk("b"),
            Chunk(finish_reason="length"),
        ]
    )
    batches = list(generation.stream(backend, [CHAT]))
    assert kinds(batches) == [["TextDelta", "TextDelta"], ["UsageReport", "Finish"]]


def test_what_was_read_before_a_failure_still_goes_out():
    backend = ScriptedBackend(
        [Chunk("a", followed=True), Chunk("b", followed=True)], UpstreamError("cut")
    )
    batches = generation.stream(backend, [CHAT])
    assert [event.text for event in next(batches)] == ["a", "b"]
    with pytest.raises(UpstreamError):
        next(batches)


def test_tool_calls_start_stream_their_arguments_and_end():
    calls = (ToolCall("call_1", "get", '{"a":1}'), ToolCall("call_2", "put", "{}"))
    backend = ScriptedBackend([Chunk(finish_reason="tool_calls", tool_calls=pieces(calls))])
    (batch,) = list(generation.stream(backend, [CHAT]))
    starts = [(e.index, e.id, e.name) for e in batch if type(e) is ToolCallStart]
    assert starts == [(0, "call_1", "get"), (1, "call_2", "put")]
    assert [(e.index, e.arguments) for e in batch if type(e) is ToolCallDelta] == [
        (0, '{"a":1}'),
        (1, "{}"),
    ]
    assert [e.index for e in batch if type(e) is ToolCallEnd] == [0, 1]
    assert type(batch[-1]) is Finish and batch[-1].reason == "tool_calls"


def test_streamed_calls_begin_grow_and_end_as_their_pieces_come():
    backend = ScriptedBackend(
        [
            Chunk(text="Let me look."),
            Chunk(tool_calls=(ToolCallPiece(0, '{"a"', "x1", "get"),)),
            Chunk(tool_calls=(ToolCallPiece(0, ":1}"),)),
            Chunk(tool_calls=(ToolCallPiece(1, "", "x2", "put"), ToolCallPiece(1, "{}"))),
            Chunk(finish_reason="tool_calls"),
        ]
    )
    events = [event for batch in generation.stream(backend, [CHAT]) for event in batch]
    calls = [e for e in events if type(e) in (ToolCallStart, ToolCallDelta, ToolCallEnd)]
    assert [repr(e) for e in calls] == [
        "ToolCallStart(0, 'x1', 'get')",
        "ToolCallDelta(0, '{\"a\"')",
        "ToolCallDelta(0, ':1}')",
        "ToolCallEnd(0)",
        "ToolCallStart(1, 'x2', 'put')",
        "ToolCallDelta(1, '{}')",
        "ToolCallEnd(1)",
    ]
    assert type(events[-1]) is Finish and events[-1].reason == "tool_calls"


def test_choices_follow_one_another_and_count_each_prompt_once():
    backend = FakeBackend(usage=Usage(5, 2, cached_tokens=4))
    first, second = GenerationRequest(prompt="a"), GenerationRequest(prompt="b")
    events = [
        event for batch in generation.stream(backend, [first, second], n=2) for event in batch
    ]
    usages = [event.usage for event in events if type(event) is UsageReport]
    assert usages == [Usage(5, 2, 4), Usage(0, 2), Usage(5, 2, 4), Usage(0, 2)]
    assert [event.reason for event in events if type(event) is Finish] == ["stop"] * 4
    assert [request.prompt for request in backend.requests] == ["a", "a", "b", "b"]


def test_whole_choices_count_each_prompt_once():
    backend = FakeBackend(usage=Usage(5, 2))
    completions = generation.complete(backend, [GenerationRequest(prompt="a")], n=3)
    assert [c.usage for c in completions] == [Usage(5, 2), Usage(0, 2), Usage(0, 2)]
    assert {c.text for c in completions} == {"Hello world"}


def test_nothing_runs_until_the_first_event_is_asked_for():
    backend = FakeBackend()
    batches = generation.stream(backend, [CHAT])
    assert backend.requests == []
    next(batches)
    assert len(backend.requests) == 1


# -- a model server that takes its time to start ------------------------------------------


def events(release: threading.Event, fail: str = "", closed: threading.Event | None = None):
    """A stream whose first event (or failure) waits for ``release``: a server starting."""
    try:
        release.wait(30)  # a hang only
        if fail:
            raise UpstreamUnavailableError(fail)
        yield [1]
        yield [2]
    finally:
        if closed is not None:
            closed.set()


def released() -> threading.Event:
    ready = threading.Event()
    ready.set()
    return ready


def test_a_prompt_first_event_needs_no_waiting():
    """Ready at once, with a patience that only a hang would outlast."""
    assert list(generation.patiently(events(released()), Helpers(), patience=30, every=0.05)) == [
        [1],
        [2],
    ]


def test_a_prompt_failure_is_raised_before_the_stream_begins():
    with pytest.raises(UpstreamUnavailableError):
        next(generation.patiently(events(released(), fail="no server"), Helpers(), patience=30))


def test_a_slow_first_event_is_preceded_by_waiting():
    """Held past the patience, again and again, then let go."""
    release = threading.Event()
    stream = generation.patiently(events(release), Helpers(), patience=0.05, every=0.05)
    assert [next(stream), next(stream)] == [[WAITING], [WAITING]]
    release.set()
    *waiting, first, second = list(stream)
    assert (first, second) == ([1], [2]) and all(event == [WAITING] for event in waiting)


def test_waiting_comes_no_more_often_than_asked():
    """Once one is out, the next waits ``every`` seconds (a hang's here): the first event,
    let go meanwhile, follows it directly."""
    release = threading.Event()
    stream = generation.patiently(events(release), Helpers(), patience=0.05, every=30)
    assert next(stream) == [WAITING]
    release.set()
    assert list(stream) == [[1], [2]]


def test_a_slow_failure_is_raised_inside_the_stream():
    release = threading.Event()
    stream = generation.patiently(
        events(release, fail="no server"), Helpers(), patience=0.05, every=0.05
    )
    assert next(stream) == [WAITING]
    release.set()
    with pytest.raises(UpstreamUnavailableError):
        list(stream)


def test_a_client_that_leaves_while_waiting_closes_the_stream_once_it_begins():
    closed, release = threading.Event(), threading.Event()
    stream = generation.patiently(
        events(release, closed=closed), Helpers(), patience=0.05, every=0.05
    )
    assert next(stream) == [WAITING]
    stream.close()
    release.set()
    assert closed.wait(30)  # a hang only


def test_a_client_that_leaves_once_the_stream_has_begun_closes_it_at_once():
    closed = threading.Event()
    stream = generation.patiently(
        events(released(), closed=closed), Helpers(), patience=30, every=0.05
    )
    assert next(stream) == [1]
    stream.close()
    assert closed.is_set()


def test_thoughts_come_before_text_and_a_prompt_counted_early_comes_first():
    first = Chunk("a", prompt_count=12)
    backend = ScriptedBackend(
        [first, Chunk("", reasoning="hmm"), Chunk(finish_reason="stop", stop_sequence="END")]
    )
    events = [event for batch in generation.stream(backend, [CHAT]) for event in batch]
    assert [type(event).__name__ for event in events] == [
        "PromptCounted",
        "TextDelta",
        "ReasoningDelta",
        "UsageReport",
        "Finish",
    ]
    assert events[0].tokens == 12 and events[2].text == "hmm"
    assert events[-1].stop_sequence == "END"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (  # the count alone: it goes out at once, before the first token
            [Chunk("", prompt_count=7), Chunk("a"), Chunk(finish_reason="stop")],
            [["PromptCounted"], ["TextDelta"], ["UsageReport", "Finish"]],
        ),
        (  # with a token: in that token's write
            [Chunk("a", prompt_count=7), Chunk(finish_reason="stop")],
            [["PromptCounted", "TextDelta"], ["UsageReport", "Finish"]],
        ),
        (  # with a token read together with the next: in their one write
            [Chunk("a", prompt_count=7, followed=True), Chunk("b"), Chunk(finish_reason="stop")],
            [["PromptCounted", "TextDelta", "TextDelta"], ["UsageReport", "Finish"]],
        ),
        (  # a count on a later chunk is not the prompt's early count
            [Chunk("a"), Chunk("b", prompt_count=7), Chunk(finish_reason="stop")],
            [["TextDelta"], ["TextDelta"], ["UsageReport", "Finish"]],
        ),
    ],
)
def test_a_prompt_counted_early_goes_out_first(chunks, expected):
    assert kinds(generation.stream(ScriptedBackend(chunks), [CHAT])) == expected


def test_nothing_is_asked_of_the_router_before_the_first_event_is():
    class Counting(ScriptedBackend):
        def stream(self, request):  # a backend's stream begins its work when first read
            asked.append(request)
            yield from super().stream(request)

    asked = []
    events = generation.stream(Counting([Chunk("a"), Chunk(finish_reason="stop")]), [CHAT])
    assert asked == []
    assert kinds(events) == [["TextDelta"], ["UsageReport", "Finish"]] and asked == [CHAT]


def measured():
    return GenerationRequest(messages=(), caller=Caller(measure=Measure()))


@pytest.mark.parametrize(
    "chunks, read, charged",
    [
        # cut by its client after two of four tokens: the prompt and the two
        (
            [Chunk("a", prompt_count=12), Chunk("b"), Chunk("c"), Chunk("d")],
            2,
            [12, 2, 0, 0, 0, 0, 0, 0, 0],
        ),
        # the server told its usage so far with its tokens
        (
            [Chunk("a", prompt_count=12, usage=Usage(12, 1)), Chunk("b", usage=Usage(12, 5))],
            2,
            [12, 5, 0, 0, 0, 0, 0, 0, 0],
        ),
        # read to its end, the usage told: that usage, once
        (
            [Chunk("a", prompt_count=12), Chunk("", finish_reason="stop", usage=Usage(12, 1))],
            9,
            [12, 1, 0, 0, 0, 0, 0, 0, 0],
        ),
        # no prompt count: the tokens alone
        ([Chunk("a"), Chunk("b"), Chunk("c")], 1, [0, 1, 0, 0, 0, 0, 0, 0, 0]),
    ],
)
def test_a_stream_cut_before_its_usage_is_charged_what_it_made(chunks, read, charged):
    request = measured()
    stream = generation.stream(ScriptedBackend(chunks), [request])
    list(itertools.islice(stream, read))
    stream.close()
    assert request.caller.measure.tokens == {"": charged}


def test_a_stream_that_fails_midway_is_charged_what_it_made():
    request = measured()
    backend = ScriptedBackend([Chunk("a", prompt_count=7), Chunk("b")], error=UpstreamError("x"))
    with pytest.raises(UpstreamError):
        list(generation.stream(backend, [request]))
    assert request.caller.measure.tokens == {"": [7, 2, 0, 0, 0, 0, 0, 0, 0]}
