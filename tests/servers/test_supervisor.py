"""The supervisor's protocol on a real Unix socket: what gunicorn workers see of it."""

from __future__ import annotations

import threading
from multiprocessing.connection import Client, Listener

import pytest

from proxy.core.errors import UpstreamUnavailableError
from proxy.servers.remote import Supervised
from proxy.servers.supervisor import Supervisor
from tests.polling import wait_for

AUTHKEY = b"k" * 32


class CountingServer:
    """Stands in for a ManagedServer: counts its users, and fails to start when told to."""

    def __init__(self, name: str, fails: str = "") -> None:
        self.name, self.url, self.fails = name, f"http://127.0.0.1/{name}", fails
        self.in_flight = 0
        self.stopped = ""

    def acquire(self) -> None:
        if self.fails:
            raise UpstreamUnavailableError(self.fails, retry_after=7)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    def is_ready(self) -> bool:
        return not self.fails

    def ensure(self) -> None:
        if self.fails:
            raise UpstreamUnavailableError(self.fails, retry_after=7)

    def stop(self, why: str = "") -> None:
        self.stopped = why

    def snapshot(self) -> dict:
        return {"in_flight": self.in_flight}

    def log_tail(self, lines: int) -> str:
        return "\n".join(f"line {n}" for n in range(lines))


@pytest.fixture
def supervised(tmp_path):
    servers = {"tiny": CountingServer("tiny"), "broken": CountingServer("broken", "no model")}
    listener = Listener(str(tmp_path / "supervisor.sock"), "AF_UNIX", authkey=AUTHKEY)
    threading.Thread(target=Supervisor(servers).serve, args=(listener,), daemon=True).start()
    client = Supervised(str(tmp_path / "supervisor.sock"), AUTHKEY)
    yield client, servers
    client.close()
    listener.close()


def test_handles_answer_like_the_servers(supervised):
    client, servers = supervised
    handles = client.servers()
    assert {name: handle.url for name, handle in handles.items()} == {
        "tiny": servers["tiny"].url,
        "broken": servers["broken"].url,
    }
    tiny = handles["tiny"]
    assert tiny.is_ready() is True
    assert tiny.log_tail(2) == "line 0\nline 1"
    tiny.stop("unloaded")
    assert servers["tiny"].stopped == "unloaded"
    with tiny.using():
        assert tiny.snapshot() == {"in_flight": 1}
    assert servers["tiny"].in_flight == 0


def test_a_failed_start_is_the_same_503_in_the_worker(supervised):
    client, _ = supervised
    broken = client.servers()["broken"]
    with pytest.raises(UpstreamUnavailableError) as error:
        with broken.using():
            pass
    assert error.value.message == "no model" and error.value.retry_after == 7
    assert broken.is_ready() is False


def test_a_worker_that_dies_using_a_server_lets_go_of_it(supervised, tmp_path):
    _, servers = supervised
    worker = Client(str(tmp_path / "supervisor.sock"), "AF_UNIX", authkey=AUTHKEY)
    worker.send(("acquire", "tiny", ()))
    assert worker.recv()[0] == "ok"
    assert servers["tiny"].in_flight == 1
    worker.close()  # what the kernel does for a worker killed mid-request
    wait_for(lambda: servers["tiny"].in_flight == 0, "the dropped use to be released")


def test_connections_are_reused(supervised):
    client, _ = supervised
    tiny = client.servers()["tiny"]
    for _ in range(20):
        tiny.snapshot()
    assert len(client._idle) == 1


def test_a_supervisor_that_is_gone_is_a_503(tmp_path):
    client = Supervised(str(tmp_path / "nobody.sock"), AUTHKEY)
    with pytest.raises(UpstreamUnavailableError) as error:
        client.servers()
    assert "must be restarted" in error.value.message
