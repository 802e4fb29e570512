"""aider (``aider-chat``, in its own virtual environment as ``.ci/clients.sh`` makes it),
headless in a git repository, through the proxy's OpenAI API with a key: asked to change a
file, the model (Qwen3's template) answers in aider's ``whole`` edit format, streamed, and
aider writes the file it gave; then runs the test command, which fails, and sends its output
back to the model, which answers. aider calls no tools (its edits and its test command are
its tools) and lists no models from a server: ``--list-models`` reads its own table."""

from __future__ import annotations

import json
import subprocess

import pytest

from . import libraries
from .families import TRIGGERS
from .marks import CLIENT, CURRENT, on
from .scriptedmodel import Script

pytestmark = [pytest.mark.e2e, pytest.mark.aider, *on(CURRENT, why=CLIENT)]

CONTENT = "hello from the model"
EDIT = f"notes.txt\n```\n{CONTENT}\n```"
# a test that shows the file and fails, as a failing test would: aider sends what it printed
# to the model, which answers once it is in its prompt
TEST = f"sh -c 'cat notes.txt; echo {TRIGGERS['result']}; exit 1'"
REPLY = "The test printed the new notes."
METADATA = {
    "max_input_tokens": 8192,
    "max_output_tokens": 4096,
    "max_tokens": 4096,
    "input_cost_per_token": 0,
    "output_cost_per_token": 0,
    "litellm_provider": "openai",
    "mode": "chat",
}


@pytest.fixture(scope="module")
def served(kind, logs, tmp_path_factory):
    scripts = [Script(EDIT), Script(REPLY, trigger=TRIGGERS["result"])]
    with libraries.served(
        kind, tmp_path_factory.mktemp("aider"), logs, "aider", scripts=scripts
    ) as running:
        yield running


def test_aider_writes_the_models_edit_and_sends_it_the_tests_output(served, tmp_path):
    proxy, tap = served
    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "notes.txt").write_text("nothing yet\n")
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "notes.txt"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start"],
    ):
        subprocess.run(command, cwd=repository, check=True)
    metadata = tmp_path / "model-metadata.json"  # the model's context: aider asks no server
    metadata.write_text(json.dumps({f"openai/{libraries.MODEL}": METADATA}))
    result = libraries.run(
        [
            str(libraries.program_of("aider", "aider")),
            "--model",
            f"openai/{libraries.MODEL}",
            "--openai-api-base",
            f"{tap.url}/v1",
            "--openai-api-key",
            libraries.KEY,
            "--model-metadata-file",
            str(metadata),
            "--edit-format",
            "whole",
            "--no-auto-commits",
            "--no-check-update",
            "--analytics-disable",
            "--no-gitignore",
            "--yes-always",
            "--no-pretty",
            "--auto-test",
            "--test-cmd",
            TEST,
            "--message",
            "Write hello from the model into notes.txt.",
            "notes.txt",
        ],
        repository,
        home=tmp_path / "home",
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (repository / "notes.txt").read_text() == CONTENT + "\n"
    assert "Applied edit to notes.txt" in result.stdout
    assert f"{CONTENT}\n{TRIGGERS['result']}\n" in result.stdout  # the test ran
    assert result.stdout.count(REPLY) == 1
    edit, reply = tap.to("/v1/chat/completions")
    assert edit.streamed and reply.streamed
    assert edit.body["model"] == reply.body["model"] == libraries.MODEL
    assert "nothing yet" in "".join(map(libraries.text_of, edit.body["messages"]))
    assert f"{CONTENT}\n{TRIGGERS['result']}" in libraries.text_of(reply.body["messages"][-1])
    assert tap.paths() == ["/v1/chat/completions"] * 2
    libraries.keyed(tap)
    assert "Traceback" not in proxy.log()
