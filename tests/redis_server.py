"""A real Redis server for what proxies share through it (Debian's redis-server): limits,
usage, stored responses, the live conversations placement balances; and one a test may kill
and start again, as an operator's bad day would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

import pytest
import redis

from tests.polling import wait_for
from tests.processes import free_port


class RedisServer:
    """``redis-server`` on a port of its own; ``durable``: every write on the disk before it
    is answered (``appendfsync always``), as a Redis that keeps budgets is run, so that one
    killed and started again has lost nothing it acknowledged."""

    def __init__(self, folder: Path, durable: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: apt-get install redis-server (.ci/run does)"
            )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else [
            "--appendonly", "no"
        ]  # fmt: skip
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        *persistence, "--dir", str(folder)]  # fmt: skip
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        with redis.Redis.from_url(self.url) as client:

            def answers() -> bool:
                try:
                    return client.ping()
                except redis.ConnectionError:
                    return False

            wait_for(answers, "redis-server to answer", timeout=10)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()
