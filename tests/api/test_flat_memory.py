"""Thousands of requests in one process, over every conversation new and many keys, from many
threads at once: the stores' connections stay pooled (counted), open files stay bounded, and
the Python heap levels off (the answers' own objects go with them)."""

from __future__ import annotations

import collections
import gc
import os
import threading
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor

from proxy.access.sqlite import SqliteFile
from proxy.fleet.seats import Affinity

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


def test_thousands_of_requests_keep_the_proxy_within_its_bounds(make_client, backend, tmp_path):
    backend.requests = collections.deque(maxlen=1)  # the fake's record: the proxy's alone counts
    keys = tmp_path / "keys.toml"
    keys.write_text("".join(f'[[keys]]\nname = "k{n}"\nkey = "sk-{n}"\n\n' for n in range(KEYS)))
    client = make_client(keys=str(keys), capture="on")
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

    capture = client.application.extensions["proxy"].capture

    def held() -> int:
        """The heap, once the exchanges waiting for their store (a bounded queue, which a
        busy machine's writer lets fill) are written."""
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
    stores = [o for o in gc.get_objects() if type(o) is SqliteFile and str(tmp_path) in o.path]
    assert len(stores) >= 3 and all(1 <= store.opened <= store.size for store in stores)
    assert open_files() <= files + 3 * sum(store.size for store in stores)
    assert after - before < 1024 * 1024  # 1,800 answers later, the heap within a MiB
    for affinity in (o for o in gc.get_objects() if type(o) is Affinity):
        assert len(affinity._where) <= affinity.capacity
