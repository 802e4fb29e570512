"""Thoughts and tool calls read out of what a model generated, whole or as it streams."""

from __future__ import annotations

from contextlib import closing
from typing import Collection, Iterator

from proxy.backends.structured import reasoning
from proxy.backends.structured.toolformats import StreamingToolParser, ToolFormat
from proxy.core.answers import Chunk, Completion, pieces
from proxy.core.types import amended

TOOL_CALLS = "tool_calls"
LENGTH = "length"


def with_thoughts(completion: Completion, opened: bool) -> Completion:
    """The answer, its thoughts taken out of the text (``opened``: the prompt opened them)."""
    thoughts, text = reasoning.split(completion.text, opened)
    return amended(completion, text=text, reasoning=thoughts)


def thinking_chunks(chunks: Iterator[Chunk], opened: bool) -> Iterator[Chunk]:
    """``chunks`` with their thoughts told apart from their text, as they come."""
    splitter = reasoning.ReasoningSplitter(opened)
    with closing(chunks):
        for chunk in chunks:
            thoughts, text = splitter.feed(chunk.text) if chunk.text else ("", "")
            if chunk.finish_reason is not None:
                rest_thoughts, rest_text = splitter.close()
                thoughts, text = thoughts + rest_thoughts, text + rest_text
            elif not (thoughts or text or chunk.logprobs or chunk.prompt_count is not None):
                continue
            yield amended(chunk, text=text, reasoning=thoughts)


def with_calls(
    completion: Completion, tool_format: ToolFormat, names: Collection[str]
) -> Completion:
    """The answer, its calls taken out of the text; ``finish_reason`` says so when it has any
    (unless the token limit cut the answer: then the calls it holds whole, and ``length``)."""
    cut = completion.finish_reason == LENGTH
    content, calls = tool_format.parse(completion.text, names, cut)
    if content == completion.text and not calls:
        return completion
    return amended(
        completion,
        text=content,
        tool_calls=calls,
        finish_reason=_finish(completion.finish_reason, calls),
    )


def calling_chunks(
    chunks: Iterator[Chunk], tool_format: ToolFormat, names: Collection[str]
) -> Iterator[Chunk]:
    """``chunks`` with the text of any call withheld and sent as calls before the finish.

    Text that cannot be part of a call passes as it comes; logprobs travel with the next text
    sent, or with the last when their text was a call.
    """
    parser = StreamingToolParser(tool_format, names)
    withheld_logprobs: list = []
    with closing(chunks):
        for chunk in chunks:
            text = parser.feed(chunk.text) if chunk.text else ""
            withheld_logprobs.extend(chunk.logprobs)
            if chunk.finish_reason is None:
                if text or chunk.reasoning or chunk.prompt_count is not None:
                    # the parser may withhold the next chunk's text: this one is not followed
                    yield amended(
                        chunk, text=text, logprobs=tuple(withheld_logprobs), followed=False
                    )
                    withheld_logprobs = []
                continue
            rest, calls = parser.close(cut=chunk.finish_reason == LENGTH)
            text += rest
            if text or withheld_logprobs:
                yield Chunk(text=text, logprobs=tuple(withheld_logprobs))
            yield amended(
                chunk,
                text="",
                tool_calls=pieces(calls),
                finish_reason=_finish(chunk.finish_reason, calls),
            )
            return


def _finish(reason: str, calls: tuple) -> str:
    """``tool_calls`` when the answer made calls, unless the token limit ended it."""
    return TOOL_CALLS if calls and reason != LENGTH else reason
