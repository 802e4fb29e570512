"""The README's first command on a machine with no compiler and no llama-server: ``pip install
.`` into a fresh virtual environment brings the bundled llama.cpp engine, and ``oai-proxy
--model`` answers with it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.processes import ROOT, ProxyProcess

from .tinymodel import write_tiny_llama_gguf

pytestmark = pytest.mark.e2e


def test_pip_install_and_go_without_a_compiler(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    tools = tmp_path / "no-tools"  # PATH holds the venv and nothing else: no cmake, no gcc
    tools.mkdir()
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{tools}",
        "CC": "/bin/false",
        "CXX": "/bin/false",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    installed = time.monotonic() - started
    model = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    with ProxyProcess(
        "http://127.0.0.1:9",
        tmp_path / "proxy.log",
        args=["--model", str(model)],
        program=[str(venv / "bin" / "oai-proxy")],
        env={name: env[name] for name in ("PATH", "CC", "CXX")},
    ) as proxy:
        client = proxy.sdk()
        chat = client.chat.completions.create(
            model="tiny", max_tokens=8, temperature=0, messages=[{"role": "user", "content": "hi"}]
        )
        answered = time.monotonic() - started
        assert chat.choices[0].message.content
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(
                model="tiny",
                max_tokens=8,
                temperature=0,
                stream=True,
                messages=[{"role": "user", "content": "hi"}],
            )
            if chunk.choices
        )
        assert streamed == chat.choices[0].message.content
        health = proxy.health()
    assert health["managed"]["engine"].startswith("bundled llama.cpp (xllamacpp ")
    assert "bundled llama.cpp" in proxy.log()
    print(f"installed in {installed:.1f}s, first answer {answered:.1f}s after the install began")
