"""What an editor needs of a server's slots, through the proxy.

Completions it abandons free their slots: twenty gaps asked of a four-slot llama-server (ten
whole on llama.cpp's ``/infill``, as llama.vim asks; ten streamed on Mistral's FIM route, as
Continue asks), all dropped while the model writes. The server stops writing them at once,
and none of those still waiting in the proxy's queue ever reaches it. (How long the slots take
to come free is measured by ``bench.fim``.)

Gaps of one file, asked one after another, find its prompt in a slot's cache: on current
llama-server, which finds the slot itself, and on PowerInfer's server, where the proxy keeps
the file on one slot.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.processes import ProxyProcess

from .abandon import busy_slots, dropped, predicted, sent, until
from .codermodels import CODERS
from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

SLOTS = 4
LONGEST = 2000  # tokens a slot's context leaves an answer (the model was trained on 2048)
GAP = {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n", "n_predict": LONGEST}
FIM = {"model": "coder", "prompt": GAP["input_prefix"], "suffix": "\n", "max_tokens": LONGEST,
       "stream": True}  # fmt: skip


@pytest.fixture(scope="module")
def coder(tmp_path_factory):
    return CODERS[0].write(tmp_path_factory.mktemp("coder"))


def test_twenty_abandoned_gaps_leave_no_slot_busy(coder, logs):
    model = coder
    with (
        LlamaServer(
            model,
            logs / "fim-cancel.log",
            parallel=SLOTS,
            ctx_size=SLOTS * 2048,
            extra_args=["--metrics"],
        ) as server,
        ProxyProcess(server.url, logs / "proxy-fim-cancel.log") as proxy,
    ):
        asked = [sent(proxy.url, "/infill", GAP) for _ in range(10)]
        asked += [sent(proxy.url, "/v1/fim/completions", FIM) for _ in range(10)]
        until(lambda: busy_slots(server.url) == SLOTS, timeout=60)
        # a starved server may answer its /slots only as slots end: what was written before
        # the clients left is not theirs to bound
        before = predicted(server.url)
        for connection in asked:
            dropped(connection)
        until(lambda: busy_slots(server.url) == 0, timeout=30)
        written = predicted(server.url)
        time.sleep(1.0)  # long enough for a request left in the queue to have reached a slot
        assert busy_slots(server.url) == 0 and predicted(server.url) == written
    # once every client had gone: four answers written out would be four times the longest;
    # twenty, had none stopped
    assert written - before < SLOTS * LONGEST


NEARBY = [{"filename": "util.py", "text": "def sub(a, b):\n    return a - b\n\n\n" * 10}]


@pytest.mark.parametrize("kind", ["llamacpp", "powerinfer"])
def test_gaps_of_one_file_find_its_prompt_in_a_slots_cache(coder, kind, logs):
    name = f"fim-cache-{kind}"
    with (
        LlamaServer(coder, logs / f"{name}.log", kind=kind, parallel=SLOTS) as server,
        ProxyProcess(server.url, logs / f"proxy-{name}.log") as proxy,
    ):
        answers = []
        for typed in ("", "    ", "    return"):  # the user types on the gap's line
            body = {**GAP, "input_extra": NEARBY, "prompt": typed, "n_predict": 4,
                    "cache_prompt": True}  # fmt: skip
            answers.append(requests.post(proxy.url + "/infill", json=body, timeout=60).json())
    cached = [answer["timings"]["cache_n"] for answer in answers]
    evaluated = [answer["tokens_evaluated"] for answer in answers]
    assert cached[0] == 0 and all(0 < cached[i] < evaluated[i] for i in (1, 2)), cached
    assert len({answer["id_slot"] for answer in answers}) == 1
