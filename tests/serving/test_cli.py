"""The oai-proxy command refuses to start, with one line saying what to fix, when it cannot
serve what it was given."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.processes import ROOT, free_port


def start(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "--port", str(free_port()), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, says",
    [
        (("--model", "/nowhere/model.gguf"), "cannot read the model file /nowhere/model.gguf"),
        (
            ("--model", __file__, "--llama-server", "/nowhere/llama-server"),
            "--llama-server /nowhere/llama-server: no executable file there",
        ),
    ],
    ids=["missing-model", "missing-binary"],
)
def test_what_cannot_be_served_stops_start_up_saying_why(args, says):
    finished = start(*args)
    assert finished.returncode != 0
    assert says in finished.stderr and "Traceback" not in finished.stderr


def test_gunicorn_without_its_hooks_will_not_run_model_servers(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "proxy.wsgi"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PROXY_MODEL": __file__},
    )
    assert finished.returncode != 0
    assert "gunicorn -c gunicorn.conf.py proxy.wsgi" in finished.stderr
