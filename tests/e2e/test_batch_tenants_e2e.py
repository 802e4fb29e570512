"""One tenant against the others' batches, on a real llama-server with the real ``openai``
SDK: key A probes while key B's batch runs on two proxies sharing a real Redis and the files'
folder, deleting its batches' inputs, sending lines nested a thousand deep and of 8 MiB; B's
batch ends with every answer the live one, A's fail by themselves, both runners go on. On a
small disk (a tmpfs) holding the files and the usage store, A's uploads stop at the reserve
and its budget holds, then holds still when the disk is full. The keys file: a key named
``admin`` is refused at start and on reload, a key added again under its name owns nothing of
the old one's, a batch's lines run as its key is now."""

from __future__ import annotations

import io
import json
import subprocess
import threading
from pathlib import Path

import openai
import pytest
import redis
import requests

from tests.hostile.cost import MiB, measured
from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess

from .llama_server import LlamaServer
from .marks import CURRENT, on

pytestmark = [pytest.mark.e2e, *on(CURRENT, why="the gateway runs the lines: any server")]

KEYS = """
[[keys]]
name = "night"
key = "sk-night"

[[keys]]
name = "probe"
key = "sk-probe"

[[keys]]
name = "thrifty"
key = "sk-thrifty"
tokens_per_day = 300
"""
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
GROWTH = 64 * MiB  # the hostile tier's bound on what a probe adds to a proxy's memory
LINES = 200
PROBES = 50


def chat(number: int, model: str = "tiny") -> dict:
    question = {"role": "user", "content": f"Say something about {number}."}
    return {"model": model, "max_tokens": 8, "temperature": 0, "seed": 1, "messages": [question]}


def jsonl(bodies: list, endpoint: str = "/v1/chat/completions") -> bytes:
    return b"".join(json.dumps({"custom_id": f"line-{n}", "method": "POST", "url": endpoint,
                                "body": body}).encode() + b"\n"
                    for n, body in enumerate(bodies))  # fmt: skip


def junk_line(custom_id: str, junk: bytes) -> bytes:
    head = json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": chat(0)})  # fmt: skip
    return head[:-2].encode() + b', "junk": ' + junk + b"}}\n"


def made(sdk, content: bytes):
    """A batch of ``content``'s lines, made through the SDK."""
    lines = sdk.files.create(file=("lines.jsonl", io.BytesIO(content)), purpose="batch")
    return lines, sdk.batches.create(input_file_id=lines.id, endpoint="/v1/chat/completions",
                                     completion_window="24h")  # fmt: skip


def finished(sdk, batch_id: str, timeout: float = 180):
    found = {}

    def ended() -> bool:
        found["batch"] = sdk.batches.retrieve(batch_id)
        return found["batch"].status in ("completed", "failed", "cancelled", "expired")

    wait_for(ended, "the batch to end", timeout=timeout)
    return found["batch"]


def answers(sdk, file_id: str) -> list:
    return [json.loads(line) for line in sdk.files.content(file_id).text.splitlines()]


@pytest.fixture(scope="module")
def server(kind, model, logs):
    with LlamaServer(model, logs / "batch-tenants-server.log", parallel=4,
                     ctx_size=4096) as server:  # fmt: skip
        yield server


def proxy_of(server, logs, folder: Path, name: str, args=(), env=None) -> ProxyProcess:
    keys = folder / f"keys-{name}.toml"
    keys.write_text(KEYS)
    return ProxyProcess(server.url, logs / f"batch-tenants-{name}.log",
                        args=["--keys", str(keys), *args], env=env)  # fmt: skip


def test_one_tenant_cannot_stop_anothers_batch_on_two_proxies(server, logs, tmp_path, redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    files = tmp_path / "files"
    shared = {"PROXY_FILES_DIR": str(files)}
    args = ["--redis-url", redis_url, "--batches-per-key", str(PROBES + 2)]  # all at once
    one, two = (proxy_of(server, logs, tmp_path, name, args, shared) for name in ("one", "two"))
    with one, two:
        night, probe = one.sdk("sk-night"), two.sdk("sk-probe")
        _, theirs = made(night, jsonl([chat(n) for n in range(LINES)]))
        mine, refused, gone = [], 0, 0
        for number in range(PROBES):  # while B's batch runs
            lines, batch = made(probe, jsonl([chat(number)]))
            mine.append(batch.id)
            try:
                probe.files.delete(lines.id)
            except openai.ConflictError as conflict:  # its batch reads it still
                assert batch.id in conflict.message
                refused += 1
            if number % 2:  # and behind the API's back, as an expiry or an operator would
                for path in files.glob(f"{lines.id}.*"):
                    path.unlink(missing_ok=True)
                gone += 1
        deep = junk_line("deep", b"[" * 1000 + b"]" * 1000)
        _, nested = made(probe, jsonl([chat(0)]) + deep)
        huge = b"[" + b"[]," * (8 * MiB // 3) + b"[]]"
        big = b"".join(junk_line(f"big-{n}", huge) for n in range(4))

        def heavy_batch():  # read by whichever proxy's runner takes it first
            return finished(probe, made(probe, big)[1].id)

        (heavy, cost_two), cost_one = measured(
            one.process.pid, lambda: measured(two.process.pid, heavy_batch)
        )
        ended = finished(night, theirs.id)
        assert ended.status == "completed" and ended.request_counts.completed == LINES
        for answer in answers(night, ended.output_file_id):  # each the prompt asked live
            live = night.chat.completions.create(**chat(int(answer["custom_id"].split("-")[1])))
            body = answer["response"]["body"]
            assert body["usage"]["prompt_tokens"] == live.usage.prompt_tokens
            assert body["choices"][0]["message"]["content"]
        outcomes = [finished(probe, id) for id in mine]
        failed = sum(outcome.status == "failed" for outcome in outcomes)
        print(f"of {PROBES} probes: {refused} deletes refused (409), {gone} inputs taken away,"
              f" {failed} batches failed by themselves")  # fmt: skip
        assert refused >= 1 and gone == PROBES // 2
        for outcome in outcomes:  # each ended by itself: answered, or failed saying why
            assert outcome.status in ("completed", "failed"), outcome
            if outcome.status == "failed":
                (fault,) = outcome.errors.data
                assert fault.code == "input_file_unreadable"
        for batch_id, code in ((nested.id, "invalid_request"), (heavy.id, "invalid_request")):
            failed = finished(probe, batch_id)
            assert failed.status == "failed" and failed.errors.data[-1].code == code
        assert "--max-nesting" in finished(probe, nested.id).errors.data[0].message
        assert "--max-containers" in finished(probe, heavy.id).errors.data[0].message
        print(f"the heavy batch cost the proxies {cost_one} and {cost_two}")
        assert cost_one.growth < GROWTH and cost_two.growth < GROWTH, (cost_one, cost_two)
        long = [{**chat(n), "max_tokens": 128, "ignore_eos": True} for n in range(120)]
        _, last = made(night, jsonl(long))
        folder = files / "batches"
        wait_for(lambda: len(list(folder.glob(f"{last.id}.*.out.jsonl"))) == 2,
                 "both proxies' runners to answer some of it", timeout=120)  # fmt: skip
        assert finished(night, last.id).request_counts.completed == 120
        for proxy in (one, two):
            assert "Traceback" not in proxy.log()


@pytest.fixture
def small_disk(tmp_path):
    """A disk of 48 MiB of its own (a tmpfs), unmounted after the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_tenant_filling_the_disk_turns_no_budget_off(server, logs, small_disk):
    """The files and the usage store on one small disk: A's uploads stop at the reserve; the
    disk then filled to its last byte by another, A's chats are answered only as far as its
    day budget (300 tokens) holds them, none served unheld, while a key without a budget is
    served; once there is room, what A spent is counted, within its budget."""
    env = {"PROXY_FILES_DIR": str(small_disk / "files"),
           "PROXY_USAGE_DB": str(small_disk / "usage.sqlite3")}  # fmt: skip
    proxy = proxy_of(server, logs, small_disk, "disk", ["--files-reserve", str(16 * MiB)], env)
    with proxy:
        thrifty = proxy.sdk("sk-thrifty")
        kept = 0
        while True:
            try:
                thrifty.files.create(file=("fill.jsonl", io.BytesIO(b"x" * MiB + b"\n")),
                                   purpose="batch")  # fmt: skip
                kept += 1
            except openai.APIStatusError as refused:
                assert refused.status_code == 503, refused
                assert refused.body["code"] == "store_unavailable"
                assert "--files-reserve" in refused.body["message"]
                break
            assert kept < 48
        assert kept >= 20  # the disk's 48 MiB, less its 16 MiB reserve
        filler = small_disk / "filler"
        with open(filler, "wb") as writing:  # another fills the disk to its last byte
            try:
                while True:
                    writing.write(b"\0" * MiB)
                    writing.flush()
            except OSError:
                pass
        codes = []
        for number in range(120):
            codes.append(requests.post(proxy.url + "/v1/chat/completions",
                                       json={**chat(number), "max_tokens": 24},
                                       headers={"Authorization": "Bearer sk-thrifty"},
                                       timeout=60).status_code)  # fmt: skip
        assert set(codes) <= {200, 429, 503}, codes  # answered, spent, or the store refusing
        served = proxy.sdk("sk-night").chat.completions.create(**chat(2))
        assert served.choices[0].message.content
        filler.unlink()  # room again: what was kept is written
        found = {}

        def counted() -> bool:
            answer = requests.get(proxy.url + "/admin/usage", headers=AS_ADMIN, timeout=30)
            found["usage"] = answer.json().get("usage") if answer.ok else None
            return answer.ok

        wait_for(counted, "the usage store to take the charges again", timeout=60)
        spent = sum(row["prompt_tokens"] + row["completion_tokens"]
                    for row in found["usage"] if row["key"] == "thrifty")  # fmt: skip
        assert spent <= 300, (spent, codes)
        assert "Traceback" not in proxy.log()


ADMIN_KEY = '[[keys]]\nname = "ops"\nkey = "sk-ops"\n\n[[keys]]\nname = "admin"\nkey = "sk-x"\n'


def test_a_key_named_admin_is_refused_at_start_and_on_reload(server, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(ADMIN_KEY)
    refused = ProxyProcess(server.url, logs / "batch-tenants-admin.log", args=["--keys", str(keys)])
    with pytest.raises(RuntimeError, match=r"key 'admin' \(line 5\): the name 'admin' is the"):
        refused.start()
    keys.write_text(KEYS)
    with ProxyProcess(server.url, logs / "batch-tenants-reload.log",
                      args=["--keys", str(keys)]) as proxy:  # fmt: skip
        keys.write_text(ADMIN_KEY)
        reload = requests.post(proxy.url + "/admin/reload", headers=AS_ADMIN, timeout=30)
        assert reload.status_code == 400 and "line 5" in reload.json()["error"]["message"]
        assert proxy.sdk("sk-night").models.list().data  # the keys served before, served still
        with pytest.raises(openai.AuthenticationError):
            proxy.sdk("sk-x").models.list()


def test_a_key_added_again_under_its_name_owns_nothing_of_the_old_ones(server, logs, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    admin = AS_ADMIN
    with ProxyProcess(server.url, logs / "batch-tenants-readded.log",
                      args=["--keys", str(keys)]) as proxy:  # fmt: skip
        old = proxy.sdk("sk-night")
        kept, batch = made(old, jsonl([chat(0)]))
        finished(old, batch.id)
        assert requests.delete(proxy.url + "/admin/keys/night", headers=admin,
                               timeout=30).status_code == 200  # fmt: skip
        added = requests.post(proxy.url + "/admin/keys", json={"name": "night",
                              "key": "sk-night-2"}, headers=admin, timeout=30)  # fmt: skip
        assert added.status_code == 201, added.text
        new = proxy.sdk("sk-night-2")
        assert new.files.list().data == [] and new.batches.list().data == []
        with pytest.raises(openai.NotFoundError):
            new.files.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            new.batches.retrieve(batch.id)


def test_a_batchs_lines_run_as_its_key_is_now(server, logs, tmp_path):
    """Made while its key may use both models and its day is spent (its lines wait), run
    once the keys file takes one model from it and its budget: those lines are 403s."""
    models = tmp_path / "models.toml"
    models.write_text(f'[models.tiny]\nupstreams = ["{server.url}"]\n'
                      f'[models.other]\nupstreams = ["{server.url}"]\n')  # fmt: skip
    keys = tmp_path / "keys.toml"
    granted = '[[keys]]\nname = "night"\nkey = "sk-night"\nmodels = ["tiny", "other"]\n'
    keys.write_text(granted + "tokens_per_day = 1\n")
    with ProxyProcess(server.url, logs / "batch-tenants-grants.log",
                      args=["--keys", str(keys), "--config", str(models)]) as proxy:  # fmt: skip
        sdk = proxy.sdk("sk-night")
        bodies = [chat(n, "tiny" if n % 2 else "other") for n in range(6)]
        _, batch = made(sdk, jsonl(bodies))
        wait_for(lambda: (sdk.batches.retrieve(batch.id).model_extra or {}).get(
            "x-oai-proxy-paused"), "its lines to wait", timeout=60)  # fmt: skip
        keys.write_text(granted.replace('"tiny", "other"', '"tiny"'))
        reload = requests.post(proxy.url + "/admin/reload", headers=AS_ADMIN, timeout=30)
        assert reload.status_code == 200, reload.text
        ended = finished(sdk, batch.id)
        assert (ended.request_counts.completed, ended.request_counts.failed) == (3, 3)
        for line in answers(sdk, ended.error_file_id):
            assert int(line["custom_id"].split("-")[1]) % 2 == 0
            assert line["response"]["status_code"] == 403
            assert line["response"]["body"]["error"]["code"] == "model_not_allowed"


def test_uploads_at_once_keep_no_more_than_the_key_may(server, logs, tmp_path):
    with proxy_of(server, logs, tmp_path, "uploads", ["--files-per-key", "2"]) as proxy:
        codes = []

        def upload() -> None:
            answer = requests.post(
                proxy.url + "/v1/files",
                data={"purpose": "batch"},
                files={"file": ("a.jsonl", io.BytesIO(jsonl([chat(0)])))},
                headers={"Authorization": "Bearer sk-night"},
                timeout=60,
            )
            codes.append(answer.status_code)

        threads = [threading.Thread(target=upload) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes) == [200] * 2 + [400] * 8
        assert len(proxy.sdk("sk-night").files.list().data) == 2
