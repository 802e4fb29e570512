"""How one choice's chunks become events (:class:`ChoiceEvents`): a table of chunks in, the
events and what each chunk said out."""

import pytest

from proxy.core.answers import Chunk, ToolCallPiece, Usage
from proxy.core.events import ChoiceEvents, UsageReport


def told(chunks):
    """Each chunk's events, as reprs, and whether it said anything; the last ends the choice
    where it says so."""
    events = ChoiceEvents()
    out = []
    for chunk in chunks:
        these: list = []
        said = events.add(chunk, these)
        if chunk.finish_reason is not None:
            events.end(chunk, Usage(3, 4), these)
        out.append(([_shown(event) for event in these], said))
    return out, events.prompt


def _shown(event) -> str:
    if type(event) is UsageReport:
        return f"UsageReport({event.usage.prompt_tokens}, {event.usage.completion_tokens})"
    return repr(event)


@pytest.mark.parametrize(
    "chunks, expected, prompt",
    [
        (
            [Chunk("a", prompt_count=7), Chunk("b", prompt_count=9)],
            [(["PromptCounted(7)", "TextDelta('a')"], True), (["TextDelta('b')"], True)],
            7,
        ),
        (
            [Chunk("", prompt_count=5), Chunk(reasoning="hm"), Chunk("x", reasoning="so")],
            [
                (["PromptCounted(5)"], False),
                (["ReasoningDelta('hm')"], True),
                (["ReasoningDelta('so')", "TextDelta('x')"], True),
            ],
            5,
        ),
        (
            [Chunk(extras={"timings": {}}), Chunk(finish_reason="stop", stop_sequence="\n")],
            [(["Extras(['timings'])"], False), (["UsageReport(3, 4)", "Finish('stop')"], False)],
            None,
        ),
        (
            [
                Chunk(tool_calls=(ToolCallPiece(4, '{"a"', "c1", "f"),)),
                Chunk(tool_calls=(ToolCallPiece(4, ": 1}"), ToolCallPiece(9, "", "c2", "g"))),
                Chunk(tool_calls=(ToolCallPiece(4, "late"),)),
                Chunk(finish_reason="tool_calls"),
            ],
            [
                (["ToolCallStart(0, 'c1', 'f')", "ToolCallDelta(0, '{\"a\"')"], True),
                (
                    ["ToolCallDelta(0, ': 1}')", "ToolCallEnd(0)", "ToolCallStart(1, 'c2', 'g')"],
                    True,
                ),
                ([], True),
                (["ToolCallEnd(1)", "UsageReport(3, 4)", "Finish('tool_calls')"], False),
            ],
            None,
        ),
    ],
    ids=["count-once", "count-then-thoughts", "extras-and-end", "calls-numbered"],
)
def test_a_choices_chunks_become_its_events(chunks, expected, prompt):
    assert told(chunks) == (expected, prompt)
