"""A reasoning model's thoughts told apart from its answer, whole or as it streams: pure.

DeepSeek-R1, QwQ, Qwen3 and their kin write ``<think>…</think>`` before the answer; many of
their chat templates open the block themselves at the end of the prompt, so the answer begins
inside it. Only a block that opens the answer counts: ``<think>`` later on is the answer's own
text. The whitespace around the thoughts and at the start of the answer is left out.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"

# where the splitter is in the answer
START = 0  # nothing decided: a block may still open
INSIDE = 1  # in the thoughts
AFTER = 2  # just past the block: the answer's leading whitespace goes
ANSWER = 3  # the answer itself


class ReasoningSplitter:
    """Split text, piece by piece, into ``(reasoning, answer)``; a piece that may be the start
    of a tag, or whitespace that may end the thoughts, waits for the next."""

    def __init__(self, opened: bool = False) -> None:
        """``opened``: the prompt ended inside a block (the template opened it)."""
        self._state = INSIDE if opened else START
        self._fresh = True  # no thought written yet: its leading whitespace goes
        self._withheld = ""

    def feed(self, text: str) -> tuple:
        """``(reasoning, answer)`` of ``text`` that is sure now."""
        if self._state == ANSWER:  # most pieces, once the thoughts are over
            return "", text
        self._withheld += text
        reasoning = answer = ""
        while True:
            withheld = self._withheld
            if self._state == START:
                stripped = withheld.lstrip()
                if stripped.startswith(OPEN):
                    self._withheld, self._state = stripped[len(OPEN) :], INSIDE
                    continue
                if not stripped or OPEN.startswith(stripped):
                    return reasoning, answer
                self._withheld, self._state = "", ANSWER
                return reasoning, answer + withheld
            if self._state == INSIDE:
                at = withheld.find(CLOSE)
                if at >= 0:
                    reasoning += self._thought(withheld[:at].rstrip())
                    self._withheld, self._state = withheld[at + len(CLOSE) :], AFTER
                    continue
                keep = _pending(withheld)
                reasoning += self._thought(withheld[: len(withheld) - keep])
                self._withheld = withheld[len(withheld) - keep :]
                return reasoning, answer
            stripped = withheld.lstrip()  # AFTER
            if not stripped:
                self._withheld = ""
                return reasoning, answer
            self._withheld, self._state = "", ANSWER
            return reasoning, answer + stripped

    def close(self) -> tuple:
        """What was withheld, once the text is over (a block the limit cut is all thoughts)."""
        withheld, self._withheld = self._withheld, ""
        if self._state == INSIDE:
            return self._thought(withheld.rstrip()), ""
        if self._state == START:
            return "", withheld
        return "", ""

    def _thought(self, text: str) -> str:
        if self._fresh:
            text = text.lstrip()
            self._fresh = not text
        return text


def split(text: str, opened: bool = False) -> tuple:
    """``(reasoning, answer)`` of a whole text."""
    splitter = ReasoningSplitter(opened)
    reasoning, answer = splitter.feed(text)
    rest_reasoning, rest_answer = splitter.close()
    return reasoning + rest_reasoning, answer + rest_answer


def _pending(text: str) -> int:
    """How many characters at the end of ``text`` must wait: the start of a closing tag, and
    the whitespace before it (the thoughts' trailing whitespace is left out)."""
    keep = 0
    for size in range(min(len(CLOSE) - 1, len(text)), 0, -1):
        if CLOSE.startswith(text[-size:]):
            keep = size
            break
    body = text[: len(text) - keep]
    return keep + len(body) - len(body.rstrip())
