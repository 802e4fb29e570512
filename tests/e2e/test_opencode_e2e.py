"""opencode (``opencode run``) through the proxy as an OpenAI-compatible provider, with a key:
the model, of a family agents run today, calls opencode's own ``bash`` tool to write a file,
then answers once the tool's result is in its prompt (see :mod:`.agent_tools`).

opencode lists no models from a provider: the models are the ones its config names.
"""

from __future__ import annotations

import pytest

from . import agents
from .agent_tools import COMMAND, assert_ran_the_call, served
from .marks import CLIENT, CURRENT, on

pytestmark = [pytest.mark.e2e, pytest.mark.opencode, *on(CURRENT, why=CLIENT)]

KEY = "sk-opencode"
FAMILY = "gpt-oss"  # the server's chat layer reads a family alike whichever agent asks
TOOL = "bash"


def test_opencode_runs_the_models_bash_call_and_prints_its_answer(kind, tmp_path, logs):
    work = tmp_path / "work"
    work.mkdir()
    arguments = {"command": COMMAND}
    with served(kind, FAMILY, TOOL, arguments, tmp_path, logs, KEY) as (proxy, tap):
        result = agents.opencode(tap.url, KEY, work, "Write notes.txt, then tell me.")
        assert_ran_the_call(result, work, proxy, tap, TOOL, KEY)
