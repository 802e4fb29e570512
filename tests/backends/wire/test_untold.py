"""The usage of an answer whose engine told none."""

from __future__ import annotations

import pytest

from proxy.backends.wire import untold
from proxy.core.types import ESTIMATED, TOLD, UNTOLD, GenerationRequest, Message, Usage

CHAT = GenerationRequest(messages=(Message("system", "Be brief."), Message("user", "Say hi")))


@pytest.mark.parametrize(
    ("request_", "prompt", "text", "pieces", "expected"),
    [
        (CHAT, 32, "", 8, Usage(32, 8)),  # the engine's count, a token per piece
        (CHAT, None, "", 8, Usage(3 + 2 + 16, 8)),  # bytes over four, eight around each message
        (CHAT, 32, "I'm glad you're here", None, Usage(32, 5)),  # a whole answer's text
        (GenerationRequest(prompt="Once upon a time"), None, "", 0, Usage(4, 0)),
    ],
)
def test_an_untold_usage_is_counted_where_the_engine_counts_else_estimated(
    request_, prompt, text, pieces, expected
):
    usage = untold.usage(request_, prompt, text, pieces)
    assert usage == expected and usage.how == ESTIMATED


def test_the_probe_is_the_request_whole_and_one_token_long():
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True},
            "max_completion_tokens": 90, "temperature": 0}  # fmt: skip
    assert untold.probe(body) == {
        "model": "m", "messages": [], "stream": False, "max_tokens": 1, "temperature": 0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("hows", "sum_how"),
    [((TOLD, TOLD), TOLD), ((TOLD, ESTIMATED), ESTIMATED), ((ESTIMATED, UNTOLD), UNTOLD)],
)
def test_a_sum_of_usages_is_as_sure_as_its_least(hows, sum_how):
    assert (Usage(1, 1, how=hows[0]) + Usage(2, 2, how=hows[1])).how == sum_how
