"""Qwen Code (``qwen`` headless, ``--approval-mode yolo``) through the proxy as an OpenAI
provider, with a key: the model, of a family agents run today, calls Qwen Code's own
``run_shell_command`` tool to write a file, then answers once the tool's result is in its
prompt (see :mod:`.agent_tools`).

Qwen Code lists a provider's models only in its interactive ``/auth`` dialog; headless, the
model is the one its settings name.
"""

from __future__ import annotations

import pytest

from . import agents
from .agent_tools import COMMAND, assert_ran_the_call, served
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.qwen_code, *on(CURRENT, why=CLIENT)]

KEY = "sk-qwen-code"
FAMILY = "qwen3-coder"  # the server's chat layer reads a family alike whichever agent asks
TOOL = "run_shell_command"


def test_qwen_code_runs_the_models_shell_call_and_prints_its_answer(kind, tmp_path, logs):
    work = tmp_path / "work"
    work.mkdir()
    arguments = {"command": COMMAND, "description": "Write notes.txt"}
    with served(kind, FAMILY, TOOL, arguments, tmp_path, logs, KEY) as (proxy, tap):
        result = agents.qwen_code(
            tap.url, KEY, work, "--approval-mode", "yolo", "Write notes.txt, then tell me."
        )
        assert_ran_the_call(result, work, proxy, tap, TOOL, KEY)
