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
from .agent_tools import AGENT_FAMILIES, COMMAND, ENGINES, assert_ran_the_call, served

pytestmark = [pytest.mark.e2e, pytest.mark.qwen_code]

KEY = "sk-qwen-code"
TOOL = "run_shell_command"


@pytest.mark.parametrize("family_name", list(AGENT_FAMILIES))
@pytest.mark.parametrize("engine", ENGINES)
def test_qwen_code_runs_the_models_shell_call_and_prints_its_answer(
    engine, family_name, tmp_path, logs
):
    work = tmp_path / "work"
    work.mkdir()
    arguments = {"command": COMMAND, "description": "Write notes.txt"}
    with served(engine, family_name, TOOL, arguments, tmp_path, logs, KEY) as (proxy, tap):
        result = agents.qwen_code(
            tap.url, KEY, work, "--approval-mode", "yolo", "Write notes.txt, then tell me."
        )
        assert_ran_the_call(result, work, proxy, tap, TOOL, KEY)
