"""Faults in the proxy's own stores, with real parts: a real Redis killed and started again under
two proxies (waitress and gunicorn), the stores' disk filled, the proxy killed with SIGKILL,
in front of a real llama-server. Nothing acknowledged is lost: every answer's tokens are
charged, to the token and once, when the store is back; what cannot be served is refused as
``store_unavailable`` in the client's own shape, before any work; no 500 anywhere."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from contextlib import ExitStack

import pytest
import redis
import requests

from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess
from tests.redis_server import RedisServer

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEYS = """
[[keys]]
name = "open"
key = "sk-open"
tokens_per_day = 10000000
requests_per_minute = 10000
store_outage = "serve"

[[keys]]
name = "closed"
key = "sk-closed"
tokens_per_day = 10000000
"""
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


class Clients:
    """Chats with the proxies, the tokens each key's answers were told, every status seen."""

    def __init__(self) -> None:
        self.told: Counter = Counter()  # key: tokens its answers were told they used
        self.answers: Counter = Counter()  # key: answers it was given
        self.statuses: list = []

    def chat(self, proxy: ProxyProcess, key: str, stream: bool, number: int, tokens: int = 6):
        body = {
            "model": "tiny",
            "max_tokens": tokens,
            "stream": stream,
            "messages": [{"role": "user", "content": f"Question {number}?"}],
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
        answer = requests.post(
            proxy.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer sk-{key}"},
            timeout=120,
            stream=stream,
        )
        self.statuses.append(answer.status_code)
        if answer.status_code == 200:
            self.told[key] += self.usage(answer, stream)
            self.answers[key] += 1
        return answer

    @staticmethod
    def usage(answer: requests.Response, stream: bool) -> int:
        if not stream:
            return answer.json()["usage"]["total_tokens"]
        chunks = [
            json.loads(line[len("data: ") :])
            for line in answer.iter_lines(decode_unicode=True)
            if line.startswith("data: {")
        ]
        return chunks[-1]["usage"]["total_tokens"]


def refused_for_the_store(answer: requests.Response) -> None:
    """A 503 naming the store, in OpenAI's shape, with when to try again."""
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "store_unavailable" and "cannot be used now" in error["message"]
    assert answer.headers["Retry-After"] == "5"


def no_failure_of_its_own(proxies) -> None:
    for proxy in proxies:
        log = proxy.log()
        assert "unexpected" not in log and "Traceback" not in log, log[-3000:]


def test_redis_killed_and_started_again_costs_no_charge_and_no_500(model, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    store = RedisServer(tmp_path, durable=True)
    clients = Clients()
    with ExitStack() as stack:
        stack.enter_context(store)
        server = stack.enter_context(
            LlamaServer(model, logs / "faults-redis-server.log", parallel=4)
        )
        args = ["--keys", str(keys), "--redis-url", store.url]
        proxies = [
            stack.enter_context(
                ProxyProcess(server.url, logs / f"proxy-faults-{how}.log", how=how, args=args)
            )
            for how in ("waitress", "gunicorn")
        ]
        for number, proxy in enumerate(proxies):
            for key in ("open", "closed"):
                for stream in (False, True):
                    assert clients.chat(proxy, key, stream, number).status_code == 200
        # streams under way when Redis dies, ending during the outage
        under_way = [
            requests.post(
                proxy.url + "/v1/chat/completions",
                json={
                    "model": "tiny",
                    "max_tokens": 48,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "A long one?"}],
                },  # fmt: skip
                headers={"Authorization": "Bearer sk-open"},
                timeout=120,
                stream=True,
            )
            for proxy in proxies
        ]
        store.kill()
        for answer in under_way:
            assert answer.status_code == 200
            clients.told["open"] += clients.usage(answer, stream=True)
            clients.answers["open"] += 1
        for number, proxy in enumerate(proxies):
            for stream in (False, True):  # a key that chose to be served is served
                assert clients.chat(proxy, "open", stream, 10 + number).status_code == 200
            refused_for_the_store(clients.chat(proxy, "closed", False, 20))
            messages = requests.post(
                proxy.url + "/v1/messages",
                json={
                    "model": "tiny",
                    "max_tokens": 4,
                    "messages": [{"role": "user", "content": "hi"}],
                },  # fmt: skip
                headers={"x-api-key": "sk-closed"},
                timeout=60,
            )
            assert messages.status_code == 503 and messages.json()["type"] == "error"
            assert "store" in messages.json()["error"]["message"]
            kept = requests.post(  # a response to keep: refused before any work
                proxy.url + "/v1/responses",
                json={"model": "tiny", "input": "hi", "max_output_tokens": 16, "store": True},
                headers={"Authorization": "Bearer sk-open"},
                timeout=60,
            )
            refused_for_the_store(kept)
            assert "response store (Redis)" in kept.json()["error"]["message"]
            usage = requests.get(proxy.url + "/admin/usage", headers=ADMIN_HEADERS, timeout=30)
            refused_for_the_store(usage)
        # the slots' line: each process admits by its own meanwhile, and says so
        metrics = requests.get(proxies[0].url + "/metrics", headers=ADMIN_HEADERS, timeout=30)
        assert "oai_proxy_queue_shared_up 0.0" in metrics.text
        store.start()  # the same Redis, its appended writes read back
        counted = redis.Redis.from_url(store.url)

        def charged(key: str) -> int:
            return sum(
                int(counted.get(name)) for name in counted.keys(f"oai-proxy:budget:{key}:day:*")
            )

        for key in ("open", "closed"):
            wait_for(
                lambda key=key: charged(key) == clients.told[key],
                f"every answer of {key!r} charged once, to the token",
                timeout=60,
            )
        totals = requests.get(proxies[0].url + "/admin/usage", headers=ADMIN_HEADERS, timeout=30)
        requests_by_key = Counter()
        for row in totals.json()["usage"]:
            requests_by_key[row["key"]] += row["requests"] - row["errors"]
        assert requests_by_key == clients.answers
        metrics = requests.get(proxies[0].url + "/metrics", headers=ADMIN_HEADERS, timeout=30).text
        assert 'oai_proxy_store_up{store="usage"} 1.0' in metrics
        assert 500 not in clients.statuses
        no_failure_of_its_own(proxies)
        log = proxies[0].log()  # one line as the outage began, one as it ended
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert sum("budget store (Redis) cannot be used:" in line for line in warnings) == 1
        assert sum("budget store (Redis) is back" in line for line in warnings) == 1
        assert not [line for line in warnings if "cannot be used now" in line]  # per request
        line_down = "the shared queue of the upstreams' slots (Redis) cannot be used:"
        assert sum(line_down in line for line in warnings) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB filesystem for the proxy's stores (the machine's root mounts it, as in CI)."""
    folder = tmp_path / "stores"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder) -> None:
    """Fill the filesystem of ``folder`` to its last byte."""
    subprocess.run(["dd", "if=/dev/zero", f"of={folder / 'filler'}", "bs=64k"], capture_output=True)


def test_a_full_disk_refuses_stored_responses_before_work_and_charges_later(
    model, logs, small_disk, tmp_path
):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    usage_db = small_disk / "usage.sqlite3"
    env = {
        "PROXY_USAGE_DB": str(usage_db),
        "PROXY_RESPONSES_DB": str(small_disk / "responses.sqlite3"),
    }
    clients = Clients()
    with (
        LlamaServer(model, logs / "faults-disk-server.log", parallel=2) as server,
        ProxyProcess(
            server.url, logs / "proxy-faults-disk.log", args=["--keys", str(keys)], env=env
        ) as proxy,
    ):
        for stream in (False, True):
            assert clients.chat(proxy, "closed", stream, 0).status_code == 200
        fill(small_disk)
        refused = 0
        for number in range(12):  # what each key spent can be read; a hold cannot be written
            stream = number % 2 == 1
            assert clients.chat(proxy, "open", stream, number).status_code == 200  # unheld
            closed = clients.chat(proxy, "closed", stream, number)
            if closed.status_code != 200:  # never served unheld: refused, or held after all
                refused_for_the_store(closed)
                refused += 1
        assert refused  # (a write the store's log had room for may take a hold)
        for stream in (False, True):
            kept = requests.post(
                proxy.url + "/v1/responses",
                json={
                    "model": "tiny",
                    "input": "x" * 4096,
                    "max_output_tokens": 16,
                    "store": True,
                    "stream": stream,
                },  # fmt: skip
                headers={"Authorization": "Bearer sk-open"},
                timeout=60,
            )
            refused_for_the_store(kept)  # a 503 before any work: no stream begun
            assert "response store (a SQLite file)" in kept.json()["error"]["message"]
        (small_disk / "filler").unlink()
        for key in ("open", "closed"):
            wait_for(
                lambda key=key: spent(usage_db, key) == clients.told[key],
                f"every answer of {key!r} charged once, to the token, once space returned",
                timeout=60,
            )
        assert 500 not in clients.statuses
        no_failure_of_its_own([proxy])
    with sqlite3.connect(usage_db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def spent(usage_db, key: str) -> int:
    with sqlite3.connect(usage_db) as db:
        found = db.execute(
            "SELECT tokens FROM budgets WHERE key = ? AND period LIKE 'day:%'", (key,)
        ).fetchone()
    return found[0] if found else 0


def test_a_proxy_killed_right_after_its_answers_has_charged_them_all(model, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    usage_db = tmp_path / "usage.sqlite3"
    clients = Clients()
    with LlamaServer(model, logs / "faults-kill-server.log", parallel=2) as server:
        proxy = ProxyProcess(
            server.url,
            logs / "proxy-faults-kill.log",
            args=["--keys", str(keys)],
            env={"PROXY_USAGE_DB": str(usage_db)},
        ).start()
        try:
            for number in range(16):
                assert clients.chat(proxy, "open", number % 2 == 1, number).status_code == 200
            proxy.kill()  # at once after the last answer's end reached its client
            # the last answers' charges kept, on their way to the store: none counted yet twice
            assert spent(usage_db, "open") <= clients.told["open"]
            proxy.start()
            totals = requests.get(proxy.url + "/admin/usage", headers=ADMIN_HEADERS, timeout=30)
            (row,) = totals.json()["usage"]
            assert (row["key"], row["requests"]) == ("open", 16)
            assert row["prompt_tokens"] + row["completion_tokens"] == clients.told["open"]
        finally:
            proxy.stop()
