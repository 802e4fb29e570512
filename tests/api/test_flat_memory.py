"""Thousands of requests in one process, over every conversation new and many keys, from many
threads at once: the stores' connections stay pooled (counted), open files stay bounded, the
placement map within its capacity, and the Python heap levels off. The requests run in a
process of their own, whose heap nothing else shares (another test's threads would show in
it)."""

from __future__ import annotations

import collections
import gc
import json
import os
import subprocess
import sys
import threading
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from proxy.access.sqlite import SqliteDatabase
from proxy.app import create_app
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings
from proxy.fleet.seats import Affinity
from tests.fakes.backend import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
KEYS = 16
THREADS = 32
APIS = (
    ("/v1/chat/completions", lambda text: {"messages": [{"role": "user", "content": text}]}),
    (
        "/v1/chat/completions",
        lambda text: {"messages": [{"role": "user", "content": text}], "stream": True},
    ),  # fmt: skip
    (
        "/v1/messages",
        lambda text: {"max_tokens": 8, "messages": [{"role": "user", "content": text}]},
    ),
    ("/v1/responses", lambda text: {"input": text}),
    (
        "/api/chat",
        lambda text: {
            "model": "m",
            "stream": False,
            "messages": [{"role": "user", "content": text}],
        },
    ),  # fmt: skip
    ("/v1/completions", lambda text: {"prompt": text}),
)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def measured(folder: str) -> dict:
    """Serve 2,700 requests from :data:`THREADS` threads in an app whose files are in
    ``folder``; what it holds, before and after the last 1,800."""
    work = Path(folder)
    (work / "keys.toml").write_text(
        "".join(f'[[keys]]\nname = "k{n}"\nkey = "sk-{n}"\n\n' for n in range(KEYS))
    )
    backend = FakeBackend()
    backend.requests = collections.deque(maxlen=1)  # the fake's record: the proxy's alone counts
    settings = Settings.of(
        keys=str(work / "keys.toml"), capture="on", usage_db=str(work / "usage.sqlite3"),
        responses_db=str(work / "responses.sqlite3"),
        exchanges_db=str(work / "exchanges.sqlite3"),
    )  # fmt: skip
    app = create_app(settings, Runtime(cache_dir=str(work / "cache"), environ=os.environ),
                     backend=backend)  # fmt: skip
    client = app.test_client()
    capture = app.extensions["proxy"].capture
    numbers = iter(range(10**9))
    lock = threading.Lock()

    def one(_: int) -> None:
        with lock:
            number = next(numbers)
        path, body = APIS[number % len(APIS)]
        reply = client.post(path, json=body(f"conversation {uuid.uuid4().hex}"),
                            headers={"Authorization": f"Bearer sk-{number % KEYS}"})  # fmt: skip
        assert reply.status_code == 200, reply.get_data()[:300]
        reply.get_data()
        reply.close()

    def held() -> int:
        """The heap, once the exchanges waiting for their store are written."""
        capture.flush()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    with ThreadPoolExecutor(THREADS) as threads:
        list(threads.map(one, range(600)))  # warm: every thread has served
        files = open_files()
        tracemalloc.start()
        list(threads.map(one, range(300)))
        before = held()
        list(threads.map(one, range(1800)))
        after = held()
        tracemalloc.stop()
    stores = [o for o in gc.get_objects() if type(o) is SqliteDatabase]
    placed = [o for o in gc.get_objects() if type(o) is Affinity]
    app.extensions["proxy"].router.close()
    return {
        "pools": [(store.opened, store.size) for store in stores],
        "files": (files, open_files()),
        "heap": (before, after),
        "placed": [(len(affinity._where), affinity.capacity) for affinity in placed],
    }


def test_thousands_of_requests_keep_the_proxy_within_its_bounds(tmp_path):
    ran = subprocess.run(
        [sys.executable, "-c", "import json, sys; from tests.api.test_flat_memory import "
         f"measured; print(json.dumps(measured({str(tmp_path)!r})))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    found = json.loads(ran.stdout.splitlines()[-1])
    pools = found["pools"]
    assert len(pools) == 3 and all(1 <= opened <= size for opened, size in pools)
    before, after = found["files"]
    assert after <= before + 3 * sum(size for _, size in pools)
    before, after = found["heap"]
    assert after - before < 1024 * 1024  # 1,800 answers later, the heap within a MiB
    assert all(count <= capacity for count, capacity in found["placed"])
