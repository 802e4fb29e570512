"""granian's own command, as the docs give it, in front of a proxy that runs no model servers:
settings from the ``PROXY_*`` variables, streams on a kept connection."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ROOT, ProxyProcess, free_port
from tests.serving.test_keepalive import sockets_used

pytestmark = pytest.mark.live

DOCS = (ROOT / "docs" / "clients-and-apis.md").read_text(encoding="utf-8")
COMMAND = re.search(r"`(granian --interface wsgi[^`]*proxy\.wsgi:app)`", DOCS).group(1)


def test_the_documented_granian_line_serves_streams_on_a_kept_connection(tmp_path: Path):
    port = free_port()
    words = shlex.split(COMMAND)
    command = [sys.executable, "-m", *words, "--port", str(port)]
    with FakeServerCpp("llamacpp") as fake:
        env = {"PROXY_LLAMA_API": fake.url, "PYTHONPATH": str(ROOT)}
        with ProxyProcess.as_given(command, port, tmp_path / "granian.log", env=env) as proxy:
            assert sockets_used(proxy.url, streamed=True) == 1
            assert "POST /v1/chat/completions 200" in proxy.log()
