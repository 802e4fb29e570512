"""Why a turn's prompt missed the KV cache: where it first differs from what the server held
after the turn before. Pure.

After a turn, a slot's cache holds that turn's prompt and the text the model wrote after it.
The next turn of the conversation reuses the cache up to the first character where its
prompt differs from that: a system prompt that changes every turn (a date, a counter)
throws away everything after it, and a template that renders the last answer otherwise than
the model wrote it (thoughts dropped, a call re-serialized) throws away the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from os.path import commonprefix
from typing import Optional

CONTEXT = 120  # characters shown on each side of the point where the prompts part


@dataclass(frozen=True)
class Divergence:
    """Where a prompt parts from the cache before it."""

    at: int  # the first character that differs (the length of the text both share)
    held: int  # characters the cache held: the turn before's prompt and answer
    before: str  # the cache's text from ``at`` on, the first :data:`CONTEXT` characters
    now: str  # the new prompt's text from ``at`` on, likewise
    shared: str  # the text both share just before ``at``, its last :data:`CONTEXT` characters
    in_answer: bool  # it parts within the answer (the template re-rendered it), not the prompt

    @property
    def reused_all(self) -> bool:
        """The prompt begins with everything the cache held."""
        return self.at == self.held


def divergence(prompt_before: str, answer_before: Optional[str], prompt_now: str) -> Divergence:
    """Where ``prompt_now`` first differs from the turn before's prompt and the text its
    model wrote (``None``: not known, as where the server's own chat layer read it)."""
    held = prompt_before + (answer_before or "")
    at = len(commonprefix([held, prompt_now]))
    return Divergence(
        at=at,
        held=len(held),
        before=held[at : at + CONTEXT],
        now=prompt_now[at : at + CONTEXT],
        shared=prompt_now[max(at - CONTEXT, 0) : at],
        in_answer=at >= len(prompt_before) and at < len(held),
    )
