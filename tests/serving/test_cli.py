"""The oai-proxy command refuses to start, with one line saying what to fix, when it cannot
serve what it was given."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.processes import ROOT, free_port


def start(*args: str, cwd=ROOT, port: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "proxy", "--port", str(port or free_port()), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args, says",
    [
        (("--model", "/nowhere/model.gguf"), "cannot read the model file /nowhere/model.gguf"),
        (("--model", "here.gguf"), "cannot read the model file {tmp}/here.gguf"),
        (("--model", "notes.txt"), "{tmp}/notes.txt is not a GGUF model file"),
        (("--model", "."), "cannot read the model file {tmp}: Is a directory"),
        (
            ("--model", "tiny.gguf", "--llama-server", "/nowhere/llama-server"),
            "--llama-server /nowhere/llama-server: no executable file there",
        ),
        (("--model", "hf:org"), "'hf:org' is not a hub reference of the form hf:<org>/<repo>"),
    ],
    ids=["missing-model", "relative", "not-gguf", "folder", "missing-binary", "bad-reference"],
)
def test_what_cannot_be_served_stops_start_up_saying_why(args, says, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF" + bytes(64))
    finished = start(*args, cwd=tmp_path)  # relative paths: from the folder it runs in
    assert finished.returncode != 0
    assert says.format(tmp=tmp_path) in finished.stderr and "Traceback" not in finished.stderr


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


def test_a_port_another_process_holds_stops_start_up_saying_so(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        port = held.getsockname()[1]
        finished = start("--llama-api", "http://127.0.0.1:9", port=port, cwd=tmp_path)
    assert finished.returncode != 0 and "Traceback" not in finished.stderr
    assert f"oai-proxy: cannot listen on 127.0.0.1:{port}: Address already in use" in (
        finished.stderr
    )
