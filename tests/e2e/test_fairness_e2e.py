"""A model shared by a team, on real servers of every generation: one key's flood of long
streams does not make another key's questions wait behind it (the policy's other cases, a
cap and priorities, are tabled in the unit tier and proven here on current llama-server).

Key A keeps 16 streams of 256 tokens in flight on four slots; B asks short questions one at
a time. What is counted, not timed, for each of B's questions: A's answers that started
while it waited, and A's answers asked before it that started after it. First come first
served (both asking as one key, as every request did before turns by key) lets all of A's
waiting requests go first; by turns, B's question takes the next slot that frees, ahead of
A's line, and so does a question of a key of a higher priority, or of a key the flood's cap
leaves a slot for.
"""

from __future__ import annotations

import pytest

from tests.processes import ProxyProcess

from .flood import SLOTS, TEAM, WAITING, under_flood
from .llama_server import LlamaServer
from .marks import CURRENT, only

pytestmark = pytest.mark.e2e

POLICY = "the queue's policy is the proxy's, whatever the server: tabled in the unit tier"


@pytest.fixture(scope="module")
def shared(kind, model, logs, tmp_path_factory):
    """A four-slot server of each generation, behind a proxy with the team's keys."""
    keys = tmp_path_factory.mktemp("fairness") / "keys.toml"
    keys.write_text(TEAM)
    extra = ["--ignore-eos"] if kind == "llamacpp" else []
    with (
        LlamaServer(
            model,
            logs / f"fairness-{kind}.log",
            kind=kind,
            parallel=SLOTS,
            ctx_size=SLOTS * 1024,
            extra_args=extra,
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-fairness-{kind}.log",
            args=["--keys", str(keys), "--threads", "64"],
        ) as proxy,
    ):
        yield kind, proxy


def test_another_keys_question_takes_the_next_free_slot(shared):
    kind, proxy = shared
    by_turns = under_flood(proxy.url, "sk-a", "sk-b")
    assert by_turns["behind"] < SLOTS and by_turns["ahead"] >= WAITING - SLOTS


@only(CURRENT, why=POLICY)
def test_one_keys_questions_wait_their_turn_behind_its_own_flood(shared):
    """What the counts are without turns: the flood's key asking too, first come first
    served."""
    kind, proxy = shared
    first_come = under_flood(proxy.url, "sk-a", "sk-a")
    assert first_come["behind"] >= WAITING - SLOTS and first_come["ahead"] < SLOTS


@only(CURRENT, why=POLICY)
@pytest.mark.parametrize(
    "flooding, asking",
    [("sk-capped", "sk-b"), ("sk-batch", "sk-interactive")],
    ids=["a-cap-below-the-slots", "interactive-before-batch"],
)
def test_a_cap_or_a_priority_keeps_a_slot_for_the_other_key(shared, flooding, asking):
    kind, proxy = shared
    counts = under_flood(proxy.url, flooding, asking)
    assert counts["behind"] < SLOTS and counts["ahead"] >= WAITING - SLOTS
