"""The last step of every answer, whichever route it took, whole or streamed: the slot it ran
in noted, its thoughts' tokens counted in its usage, the prompt's token ids where asked.

Whole answers and the last chunk of a stream carry the same fields (``usage``,
``prompt_tokens``, ``slot``), so one :class:`Finisher` serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional, TypeVar, Union

from proxy.backends.admission import Admission
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.streams import finishing
from proxy.core.types import Chunk, Completion, Usage

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
            answer = replace(
                answer,
                usage=replace(
                    answer.usage or Usage(),
                    reasoning_tokens=len(self.tokens.token_ids(thoughts)) if thoughts else 0,
                ),
            )
        if self.prompt_ids is not None:
            answer = replace(answer, prompt_tokens=self.prompt_ids())
        return answer

    def whole(self, answer: Completion) -> Completion:
        return self.finish(answer, answer.reasoning)

    def stream(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """``chunks``, the last finished with the thoughts of all of them."""
        return finishing(chunks, self.finish)
