"""Shaping a stream of chunks: counted, finished with its thoughts in hand, or collected into
one answer."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Callable, Iterator

from proxy.core.errors import UpstreamError
from proxy.core.types import Chunk, Completion, Usage, assembled

logger = logging.getLogger(__name__)


def counted_first(chunks: Iterator[Chunk], count: Callable[[], int]) -> Iterator[Chunk]:
    """``chunks``, the first carrying the prompt's token count (``count()``) if it has none
    (and the server counts it: the count is no reason to fail the answer)."""
    with contextlib.closing(chunks):
        first = next(chunks)
        if first.prompt_count is None:
            try:
                first = replace(first, prompt_count=count())
            except UpstreamError as exc:
                logger.info("the prompt could not be counted ahead: %s", exc.message)
        yield first
        yield from chunks


def finishing(chunks: Iterator[Chunk], finish: Callable[[Chunk, str], Chunk]) -> Iterator[Chunk]:
    """``chunks``, the last as ``finish(last, thoughts)`` makes it, with the answer's
    thoughts in hand (their tokens count in its usage)."""
    thoughts = []
    with contextlib.closing(chunks):
        for chunk in chunks:
            if chunk.finish_reason is None:
                if chunk.reasoning:
                    thoughts.append(chunk.reasoning)
                yield chunk
                continue
            yield finish(chunk, "".join(thoughts) + chunk.reasoning)
            return


def collect(chunks: Iterator[Chunk]) -> Completion:
    texts, thoughts, logprobs, calls = [], [], [], []
    for chunk in chunks:
        texts.append(chunk.text)
        thoughts.append(chunk.reasoning)
        logprobs.extend(chunk.logprobs)
        calls.extend(chunk.tool_calls)
        if chunk.finish_reason is not None:
            return Completion(
                "".join(texts),
                chunk.finish_reason,
                chunk.usage or Usage(),
                tuple(logprobs),
                chunk.prompt_tokens,
                chunk.truncated,
                assembled(calls),
                slot=chunk.slot,
                reasoning="".join(thoughts),
                stop_sequence=chunk.stop_sequence,
            )
    raise AssertionError("a stream always ends with a finish reason")
