"""The last step of every answer, whichever route it took, whole or streamed: the slot it ran
in noted, its thoughts' tokens counted in its usage, the prompt's token ids where asked; and
the shaping of a stream of chunks on its way there: counted, finished with its thoughts in
hand, or collected into one answer.

Whole answers and the last chunk of a stream carry the same fields (``usage``,
``prompt_tokens``, ``slot``), so one :class:`Finisher` serves both.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar, Union

from proxy.backends.servercpp.embedding import TokenClient
from proxy.core.answers import Chunk, Completion, Usage, assembled
from proxy.core.errors import UpstreamError
from proxy.core.types import amended
from proxy.queue.admission import Admission

Answer = TypeVar("Answer", bound=Union[Completion, Chunk])


@dataclass(frozen=True)
class Finisher:
    """How one request's answer is finished.

    ``admission``: told the slot the answer came from, where the route's answers name one;
    ``thoughts``: the thoughts' tokens are counted (``False`` where they stay in the text);
    ``prompt_ids``: the prompt's token ids, where the client asked for them.
    """

    tokens: TokenClient
    admission: Optional[Admission] = None
    thoughts: bool = True
    prompt_ids: Optional[Callable[[], tuple]] = None

    def finish(self, answer: Answer, thoughts: str) -> Answer:
        """Finish ``answer``, ``thoughts`` being all it thought: tell admission its slot,
        count its thoughts' tokens (a ``/tokenize``), add the prompt's ids."""
        if self.admission is not None:
            self.admission.saw_slot(answer.slot)
        if self.thoughts:
            answer = amended(
                answer,
                usage=amended(
                    answer.usage or Usage(),
                    reasoning_tokens=len(self.tokens.token_ids(thoughts)) if thoughts else 0,
                ),
            )
        if self.prompt_ids is not None:
            answer = amended(answer, prompt_token_ids=self.prompt_ids())
        return answer

    def whole(self, answer: Completion) -> Completion:
        return self.finish(answer, answer.reasoning)

    def stream(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """``chunks``, the last finished with the thoughts of all of them."""
        return finishing(chunks, self.finish)


logger = logging.getLogger(__name__)


def counted_first(chunks: Iterator[Chunk], count: Callable[[], int]) -> Iterator[Chunk]:
    """``chunks``, the first carrying the prompt's token count (``count()``) if it has none
    (and the server counts it: the count is no reason to fail the answer)."""
    with contextlib.closing(chunks):
        first = next(chunks)
        if first.prompt_count is None:
            try:
                first = amended(first, prompt_count=count())
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
    texts, thoughts, logprobs, calls, extras = [], [], [], [], {}
    for chunk in chunks:
        if chunk.extras:
            extras.update(chunk.extras)
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
                chunk.prompt_token_ids,
                chunk.truncated,
                assembled(calls),
                slot=chunk.slot,
                reasoning="".join(thoughts),
                stop_sequence=chunk.stop_sequence,
                extras=extras,
            )
    raise AssertionError("a stream always ends with a finish reason")
