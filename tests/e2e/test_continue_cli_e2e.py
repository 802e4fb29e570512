"""Continue's CLI (``cn -p``, headless) through the proxy as an OpenAI provider, with a key:
the model, of a family agents run today, calls the CLI's own ``Bash`` tool (allowed headless
by default) to write a file, then answers once the tool's result is in its prompt (see
:mod:`.agent_tools`).

The CLI lists no models from a provider: the models are the ones its config names.
"""

from __future__ import annotations

import pytest

from . import agents
from .agent_tools import COMMAND, assert_ran_the_call, served
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.continue_cli, *on(CURRENT, why=CLIENT)]

KEY = "sk-continue"
FAMILY = "gpt-oss"  # the server's chat layer reads a family alike whichever agent asks
TOOL = "Bash"


def test_continue_cli_runs_the_models_bash_call_and_prints_its_answer(kind, tmp_path, logs):
    work = tmp_path / "work"
    work.mkdir()
    arguments = {"command": COMMAND}
    with served(kind, FAMILY, TOOL, arguments, tmp_path, logs, KEY) as (proxy, tap):
        result = agents.continue_cli(tap.url, KEY, work, "-p", "Write notes.txt, then tell me.")
        assert_ran_the_call(result, work, proxy, tap, TOOL, KEY)
