"""Batches with the real ``openai`` SDK on a real llama-server: a file of chat lines and one of
embedding lines run by the gateway, each answer once and of the same prompt as the request
asked live; an error line in the error file; the proxy SIGKILLed mid-batch and started again
finishes it, each ``custom_id`` once, the key charged the lines' usage to the token; two
proxies sharing a real Redis and the files' folder both run one batch, and one SIGKILLed
leaves its requests to the other; a Redis killed mid-batch and started again leaves the
batch waiting, then finished, each request once and charged once.
"""

from __future__ import annotations

import io
import json
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from proxy.batches.redisqueue import LEASE
from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess
from tests.redis_server import RedisServer

from .flood import QUESTIONS, SLOTS, questions
from .llama_server import LlamaServer
from .marks import CURRENT, on

pytestmark = [pytest.mark.e2e, *on(CURRENT, why="the gateway runs the lines: any server")]

KEYS = """
[[keys]]
name = "night"
key = "sk-night"

[[keys]]
name = "day"
key = "sk-day"
"""
CHATS, EMBEDDINGS = 200, 50


def chat(number: int) -> dict:
    question = {"role": "user", "content": f"Say something about {number}."}
    return {"model": "tiny", "max_tokens": 8, "temperature": 0, "seed": 1, "messages": [question]}


def lines(endpoint: str, bodies: list) -> bytes:
    return b"".join(
        json.dumps(
            {"custom_id": f"line-{n}", "method": "POST", "url": endpoint, "body": body}
        ).encode()
        + b"\n"  # fmt: skip
        for n, body in enumerate(bodies)
    )


@pytest.fixture(scope="module")
def server(kind, model, logs):
    with LlamaServer(model, logs / "batches-server.log", parallel=4, ctx_size=4096,
                     embedding=True) as server:  # fmt: skip
        yield server


def proxy_of(server, logs, tmp_path, name: str, args=(), env=None) -> ProxyProcess:
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    return ProxyProcess(server.url, logs / f"batches-{name}.log", args=["--keys", str(keys),
                        *args], env=env)  # fmt: skip


def chat_batch(sdk, bodies: list):
    """A batch of chats, one a body, made through the SDK."""
    made = sdk.files.create(file=("chats.jsonl", io.BytesIO(lines("/v1/chat/completions",
                                                                  bodies))),
                            purpose="batch")  # fmt: skip
    return sdk.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                              completion_window="24h")  # fmt: skip


def finished(sdk, batch_id: str, timeout: float = 120):
    found = {}

    def ended() -> bool:
        found["batch"] = sdk.batches.retrieve(batch_id)
        return found["batch"].status in ("completed", "failed", "cancelled", "expired")

    wait_for(ended, "the batch to end", timeout=timeout)
    return found["batch"]


def answers(sdk, file_id: str) -> list:
    return [json.loads(line) for line in sdk.files.content(file_id).text.splitlines()]


def test_the_sdk_runs_a_batch_of_chats_and_one_of_embeddings(server, logs, tmp_path):
    with proxy_of(server, logs, tmp_path, "sdk") as proxy:
        sdk = proxy.sdk("sk-night")
        refused = {
            "model": "tiny",
            "max_tokens": -1,
            "messages": [{"role": "user", "content": "x"}],
        }
        bodies = [chat(n) for n in range(CHATS)] + [refused]
        chats = sdk.files.create(file=("chats.jsonl", io.BytesIO(lines("/v1/chat/completions",
                                                                          bodies))),
                                 purpose="batch")  # fmt: skip
        texts = [{"model": "tiny", "input": f"text number {n}"} for n in range(EMBEDDINGS)]
        embeds = sdk.files.create(file=("embeds.jsonl", io.BytesIO(lines("/v1/embeddings",
                                                                            texts))),
                                  purpose="batch")  # fmt: skip
        made = [
            sdk.batches.create(input_file_id=chats.id, endpoint="/v1/chat/completions",
                               completion_window="24h", metadata={"job": "chats"}),
            sdk.batches.create(input_file_id=embeds.id, endpoint="/v1/embeddings",
                               completion_window="24h"),
        ]  # fmt: skip
        chat_batch, embed_batch = (finished(sdk, batch.id) for batch in made)
        assert chat_batch.status == "completed" and chat_batch.metadata == {"job": "chats"}
        assert chat_batch.request_counts.total == CHATS + 1
        assert (chat_batch.request_counts.completed, chat_batch.request_counts.failed) == (CHATS, 1)
        got = answers(sdk, chat_batch.output_file_id)
        assert sorted(a["custom_id"] for a in got) == sorted(f"line-{n}" for n in range(CHATS))
        for answer in got[:8]:  # each the same prompt as the request asked live; its text
            # may differ: llama-server's sums, in slots side by side, are not a lone slot's
            number = int(answer["custom_id"].split("-")[1])
            live = sdk.chat.completions.create(**chat(number))
            body = answer["response"]["body"]
            assert body["usage"]["prompt_tokens"] == live.usage.prompt_tokens
            assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"]
        (error,) = answers(sdk, chat_batch.error_file_id)
        assert error["custom_id"] == f"line-{CHATS}" and error["response"]["status_code"] == 400
        assert (
            embed_batch.status == "completed" and embed_batch.request_counts.completed == EMBEDDINGS
        )
        vectors = answers(sdk, embed_batch.output_file_id)
        assert len(vectors) == EMBEDDINGS
        assert all(len(v["response"]["body"]["data"][0]["embedding"]) > 0 for v in vectors)
        listed = sdk.batches.list()
        assert {batch.id for batch in listed.data} == {chat_batch.id, embed_batch.id}


def usage_tokens(proxy: ProxyProcess) -> int:
    with sqlite3.connect(proxy.env["PROXY_USAGE_DB"]) as db:
        row = db.execute(
            "SELECT sum(prompt_tokens + completion_tokens) FROM usage WHERE key = 'night'"
        ).fetchone()
    return row[0] or 0


def test_a_proxy_killed_mid_batch_finishes_it_once_started_again(server, logs, tmp_path):
    proxy = proxy_of(server, logs, tmp_path, "killed")
    count = 60
    with proxy:
        sdk = proxy.sdk("sk-night")
        bodies = [{**chat(n), "max_tokens": 48} for n in range(count)]
        batch = chat_batch(sdk, bodies)
        wait_for(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 5,
                 "some lines answered", timeout=60)  # fmt: skip
        proxy.kill()
    before = time.monotonic()
    with proxy:
        sdk = proxy.sdk("sk-night")
        ended = finished(sdk, batch.id, timeout=180)
        print(f"the batch ended {time.monotonic() - before:.1f}s after the restart")
        assert ended.status == "completed" and ended.request_counts.completed == count
        got = answers(sdk, ended.output_file_id)
        ids = [a["custom_id"] for a in got]
        assert sorted(ids) == sorted(f"line-{n}" for n in range(count))  # each once
        told = sum(a["response"]["body"]["usage"]["total_tokens"] for a in got)
        # a line asked again after the kill counts once (the last lines' charges written
        # within a tenth of a second of their answers)
        wait_for(lambda: usage_tokens(proxy) == told, f"{told} tokens charged")


def test_the_anthropic_sdk_runs_a_message_batch(server, logs, tmp_path):
    with proxy_of(server, logs, tmp_path, "anthropic") as proxy:
        sdk = proxy.anthropic("sk-night")

        def params(number: int) -> dict:
            question = {"role": "user", "content": f"Say something about {number}."}
            return {"model": "tiny", "max_tokens": 8, "messages": [question]}

        greedy = {"temperature": 0}  # in the SDK's extra_body: its own types leave it out
        asked = [{"custom_id": f"q-{n}", "params": {**params(n), **greedy}} for n in range(12)]
        batch = sdk.messages.batches.create(requests=asked)
        assert batch.type == "message_batch" and batch.processing_status == "in_progress"
        wait_for(lambda: sdk.messages.batches.retrieve(batch.id).processing_status == "ended",
                 "the message batch to end", timeout=120)  # fmt: skip
        ended = sdk.messages.batches.retrieve(batch.id)
        assert ended.request_counts.succeeded == 12 and ended.request_counts.errored == 0
        results = {each.custom_id: each.result for each in sdk.messages.batches.results(batch.id)}
        assert sorted(results) == sorted(f"q-{n}" for n in range(12))
        for number in (0, 5, 11):
            live = sdk.messages.create(**params(number), extra_body=greedy)
            kept = results[f"q-{number}"]
            assert kept.type == "succeeded"  # the same prompt (its text: see above)
            assert kept.message.usage.input_tokens == live.usage.input_tokens
            assert kept.message.content[0].text and kept.message.usage.output_tokens
        assert [each.id for each in sdk.messages.batches.list()] == [batch.id]


def test_two_proxies_run_one_batch_and_one_killed_leaves_its_requests_to_the_other(
    server, logs, tmp_path, redis_url
):
    redis.Redis.from_url(redis_url).flushdb()
    shared = {"PROXY_FILES_DIR": str(tmp_path / "files")}
    one, two = (proxy_of(server, logs, tmp_path, name, ["--redis-url", redis_url], shared)
                for name in ("one", "two"))  # fmt: skip
    count = 120
    with one, two:
        sdk = one.sdk("sk-night")  # long answers: the batch outlasts the kill's first seconds
        bodies = [{**chat(n), "max_tokens": 128, "ignore_eos": True} for n in range(count)]
        batch = chat_batch(sdk, bodies)
        folder = tmp_path / "files" / "batches"
        wait_for(lambda: len(list(folder.glob(f"{batch.id}.*.out.jsonl"))) == 2,
                 "both proxies to answer some of it", timeout=60)  # fmt: skip
        one.kill()
        before = time.monotonic()
        sdk = two.sdk("sk-night")
        ended = finished(sdk, batch.id, timeout=180)
        print(f"the batch ended {time.monotonic() - before:.1f}s after the kill (lease {LEASE}s)")
        assert ended.status == "completed" and ended.request_counts.completed == count
        got = answers(sdk, ended.output_file_id)
        assert sorted(a["custom_id"] for a in got) == sorted(f"line-{n}" for n in range(count))
        told = sum(a["response"]["body"]["usage"]["total_tokens"] for a in got)
        assert charged_tokens(two) == told


def charged_tokens(proxy: ProxyProcess) -> int:
    usage = requests.get(proxy.url + "/admin/usage", headers={"Authorization": f"Bearer {ADMIN}"},
                         timeout=10).json()["usage"]  # fmt: skip
    return sum(row["prompt_tokens"] + row["completion_tokens"] for row in usage
               if row["key"] == "night")  # fmt: skip


def test_a_batch_waits_out_redis_killed_and_started_again(server, logs, tmp_path):
    store = RedisServer(tmp_path, durable=True)  # as one that keeps budgets is run
    with store, proxy_of(server, logs, tmp_path, "redis-outage",
                         ["--redis-url", store.url]) as proxy:  # fmt: skip
        sdk = proxy.sdk("sk-night")
        count = 120
        bodies = [{**chat(n), "max_tokens": 128, "ignore_eos": True} for n in range(count)]
        batch = chat_batch(sdk, bodies)
        wait_for(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 10,
                 "some lines answered", timeout=60)  # fmt: skip
        store.kill()
        time.sleep(2)  # the outage: what runs ends, nothing new starts
        during = sdk.batches.retrieve(batch.id)
        assert during.status == "in_progress" and during.request_counts.failed == 0
        store.start()  # its appended writes read back
        ended = finished(sdk, batch.id, timeout=180)
        assert ended.status == "completed" and ended.request_counts.completed == count
        got = answers(sdk, ended.output_file_id)
        assert sorted(a["custom_id"] for a in got) == sorted(f"line-{n}" for n in range(count))
        told = sum(a["response"]["body"]["usage"]["total_tokens"] for a in got)
        assert charged_tokens(proxy) == told
        log = proxy.log()
        assert "Traceback" not in log
        assert log.count("the batch queue (Redis) cannot be used") == 1
        assert log.count("the batch queue (Redis) is back") == 1


class Kept:
    """The batch's answers as they reach the disk, counted on the ``perf_counter`` clock."""

    def __init__(self, folder, batch_id: str) -> None:
        self.folder, self.batch_id = folder, batch_id
        self.seen: list = []  # (when, answers kept by then)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch)

    def _watch(self) -> None:
        while not self.stop.wait(0.002):
            count = sum(path.read_bytes().count(b"\n")
                        for path in self.folder.glob(f"{self.batch_id}.*.out.jsonl"))  # fmt: skip
            self.seen.append((time.perf_counter(), count))

    def between(self, began: float, ended: float) -> int:
        """Answers kept from ``began`` to ``ended``."""
        counts = [count for when, count in self.seen if began <= when <= ended]
        return counts[-1] - counts[0] if counts else 0

    def __enter__(self) -> "Kept":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


def test_a_live_question_waits_for_one_batch_answer_and_the_batch_still_finishes(
    server, logs, tmp_path
):
    """A batch of 500 on four slots: each of the day key's questions, one at a time, takes
    the next slot a batch answer frees; fewer batch answers end while it waits than there are
    slots (a batch that went first would end hundreds)."""
    count = 500
    with proxy_of(server, logs, tmp_path, "live") as proxy:
        sdk = proxy.sdk("sk-night")
        bodies = [
            {**chat(n), "max_tokens": 32 + 16 * (n % 4), "ignore_eos": True} for n in range(count)
        ]  # fmt: skip  (lengths apart: the slots free in turn)
        batch = chat_batch(sdk, bodies)
        wait_for(lambda: sdk.batches.retrieve(batch.id).request_counts.completed >= 20,
                 "the batch to fill the slots", timeout=60)  # fmt: skip
        folder = Path(proxy.env["PROXY_FILES_DIR"]) / "batches"
        with Kept(folder, batch.id) as kept:
            asked = questions(proxy.url, "sk-day", QUESTIONS)
        ended_meanwhile = [kept.between(q.sent, q.first) for q in asked]
        print("batch answers kept while each question waited:", ended_meanwhile,
              "first bytes (ms):", [round(q.first_ms) for q in asked])  # fmt: skip
        assert statistics.median(ended_meanwhile) < SLOTS
        assert sdk.batches.retrieve(batch.id).request_counts.completed < count  # still running
        ended = finished(sdk, batch.id, timeout=300)
        assert ended.status == "completed" and ended.request_counts.completed == count
