"""Whether a chat is far beyond a model's context, known without tokenizing it. Pure.

Tokenizing takes the server time in proportion to the prompt (over a second for 3 MiB), and
the oldest servers do not refuse a prompt longer than their context: they cut it and answer.
No tokenizer's tokens average near :data:`MOST_CHARACTERS_PER_TOKEN` characters over real
text (they average three to five), so a chat of more characters than that many times the
context cannot fit, and is refused at once.
"""

from __future__ import annotations

from typing import Optional

from proxy.core.errors import ContextLengthError
from proxy.core.types import GenerationRequest

MOST_CHARACTERS_PER_TOKEN = 32


def fewest_tokens(request: GenerationRequest) -> int:
    """A number of tokens ``request``'s prompt certainly takes, from its text's length."""
    characters = (
        len(request.prompt)
        if request.prompt is not None
        else sum(len(message.content) for message in request.messages)
    )
    return characters // MOST_CHARACTERS_PER_TOKEN


def check_fits(request: GenerationRequest, context: Optional[int]) -> None:
    """Refuse ``request`` when its prompt is far beyond ``context`` tokens (``None``: a
    context not known)."""
    if context is None:
        return
    fewest = fewest_tokens(request)
    if fewest > context:
        raise ContextLengthError(fewest, context, at_least=True)
