"""Completions an editor abandons free their slots: twenty gaps asked of a four-slot
llama-server through the proxy (ten whole on llama.cpp's ``/infill``, as llama.vim asks; ten
streamed on Mistral's FIM route, as Continue asks), all dropped while the model writes. The
server stops writing them at once, and none of those still waiting in the proxy's line ever
reaches it. (How long the slots take to come free is measured by ``bench.fim``.)"""

from __future__ import annotations

import time

import pytest

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


def test_twenty_abandoned_gaps_leave_no_slot_busy(tmp_path, logs):
    model = CODERS[0].write(tmp_path)
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
        for connection in asked:
            dropped(connection)
        until(lambda: busy_slots(server.url) == 0, timeout=30)
        written = predicted(server.url)
        time.sleep(1.0)  # long enough for a request left in the line to have reached a slot
        assert busy_slots(server.url) == 0 and predicted(server.url) == written
    # four answers written out would be four times the longest; twenty, had none stopped
    assert written < SLOTS * LONGEST
