"""A chat far beyond a model's context, told without tokenizing it."""

from __future__ import annotations

import pytest

from proxy.core.context import MOST_CHARACTERS_PER_TOKEN, check_fits, fewest_tokens
from proxy.core.errors import ContextLengthError
from proxy.core.types import GenerationRequest, Message

PER = MOST_CHARACTERS_PER_TOKEN


def chat(*texts: str) -> GenerationRequest:
    return GenerationRequest(messages=tuple(Message("user", text) for text in texts))


@pytest.mark.parametrize(
    ("request_", "fewest"),
    [
        (chat(""), 0),
        (chat("x" * (PER - 1)), 0),
        (chat("x" * PER), 1),
        (chat("x" * PER, "y" * PER), 2),
        (GenerationRequest(prompt="z" * 3 * PER), 3),
    ],
)
def test_fewest_tokens(request_, fewest):
    assert fewest_tokens(request_) == fewest


@pytest.mark.parametrize(
    ("characters", "context", "refused"),
    [
        (3 * 1024 * 1024, 4096, True),  # 3 MiB against 4,096 tokens
        (PER * 4096, 4096, False),  # may fit: the server counts it
        (PER * 4097, 4096, True),
        (10**6, None, False),  # a context not known: the server's to judge
    ],
)
def test_check_fits(characters, context, refused):
    request = chat("a" * characters)
    if not refused:
        check_fits(request, context)
        return
    with pytest.raises(ContextLengthError) as error:
        check_fits(request, context)
    assert error.value.limit == context and error.value.prompt_tokens > context
    assert f"at least {error.value.prompt_tokens} tokens" in error.value.message
