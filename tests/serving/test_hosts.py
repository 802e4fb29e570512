"""``--host`` lists several addresses, as llama-server's does: the proxy answers on each,
under waitress and gunicorn, and stops as it does on one; granian, which listens on one,
says so."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

BOTH = "127.0.0.1,::1"


@pytest.mark.parametrize("how", ["waitress", "gunicorn"])
def test_the_proxy_answers_on_every_address_it_is_given(how, tmp_path):
    with FakeServerCpp("llamacpp", tokens=["hi"] * 2) as fake:
        proxy = ProxyProcess(fake.url, tmp_path / "proxy.log", how=how, args=["--host", BOTH])
        proxy.start()
        try:
            for base in (f"http://127.0.0.1:{proxy.port}", f"http://[::1]:{proxy.port}"):
                reply = requests.post(
                    base + "/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=30
                )
                assert reply.status_code == 200, reply.text
            proxy.process.send_signal(signal.SIGTERM)
            assert proxy.process.wait(30) == 0
        finally:
            proxy.stop()
    assert "Traceback" not in proxy.log()


def test_granian_says_it_listens_on_one_address():
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "--server", "granian", "--host", BOTH],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--host lists 2 addresses and granian listens on one" in done.stderr
