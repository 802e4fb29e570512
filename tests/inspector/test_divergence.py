"""Where a turn's prompt parts from the cache the turn before left."""

from __future__ import annotations

import pytest

from proxy.inspector.divergence import CONTEXT, divergence

SYSTEM = "<|im_start|>system\nToday is Monday.<|im_end|>\n"
ASKED = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
ANSWER = "<think>greet</think>Hello!"
NEXT = "<|im_end|>\n<|im_start|>user\nmore<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "before, answer, now, at, reused_all, in_answer, now_text",
    [
        # the prompt goes on from everything the cache held
        (SYSTEM + ASKED, ANSWER, SYSTEM + ASKED + ANSWER + NEXT,
         len(SYSTEM + ASKED + ANSWER), True, False, NEXT),
        # a system prompt that changes every turn: everything after the date is re-read
        (SYSTEM + ASKED, ANSWER, SYSTEM.replace("Monday", "Tuesday") + ASKED + ANSWER + NEXT,
         SYSTEM.index("Monday"), False, False, "Tuesday"),
        # the template drops the thoughts it rendered last turn: the answer is re-read
        (SYSTEM + ASKED, ANSWER, SYSTEM + ASKED + "Hello!" + NEXT,
         len(SYSTEM + ASKED), False, True, "Hello!"),
        # the answer is not known (the server's chat layer read it): the prompt is compared
        (SYSTEM + ASKED, None, SYSTEM + ASKED + "Hello!" + NEXT,
         len(SYSTEM + ASKED), True, False, "Hello!"),
        # nothing shared
        ("abc", None, "xyz", 0, False, False, "xyz"),
    ],
    ids=["reused", "system changed", "thoughts dropped", "answer unknown", "nothing shared"],
)  # fmt: skip
def test_where_the_prompt_parts(before, answer, now, at, reused_all, in_answer, now_text):
    parted = divergence(before, answer, now)
    assert parted.at == at
    assert parted.reused_all == reused_all
    assert parted.in_answer == in_answer
    assert parted.now.startswith(now_text)
    assert now[:at].endswith(parted.shared)


def test_each_side_is_shown_only_near_the_point():
    long = "x" * 1000
    parted = divergence(long + "a" + long, None, long + "b" + long)
    assert parted.at == 1000
    assert len(parted.before) == len(parted.now) == len(parted.shared) == CONTEXT
    assert parted.before[0] == "a" and parted.now[0] == "b"
