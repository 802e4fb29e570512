"""opencode (``opencode run``) through the proxy as an OpenAI-compatible provider, with a key:
the model, of a family agents run today, calls opencode's own ``bash`` tool to write a file,
then answers once the tool's result is in its prompt (see :mod:`.agent_tools`).

opencode lists no models from a provider: the models are the ones its config names.
"""

from __future__ import annotations

import pytest

from . import agents
from .agent_tools import AGENT_FAMILIES, COMMAND, ENGINES, assert_ran_the_call, served

pytestmark = [pytest.mark.e2e, pytest.mark.opencode]

KEY = "sk-opencode"
TOOL = "bash"


@pytest.mark.parametrize("family_name", list(AGENT_FAMILIES))
@pytest.mark.parametrize("engine", ENGINES)
def test_opencode_runs_the_models_bash_call_and_prints_its_answer(
    engine, family_name, tmp_path, logs
):
    work = tmp_path / "work"
    work.mkdir()
    arguments = {"command": COMMAND}
    with served(engine, family_name, TOOL, arguments, tmp_path, logs, KEY) as (proxy, tap):
        result = agents.opencode(tap.url, KEY, work, "Write notes.txt, then tell me.")
        assert_ran_the_call(result, work, proxy, tap, TOOL, KEY)
