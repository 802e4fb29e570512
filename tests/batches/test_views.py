"""Files and batches over the app (the fake backend): uploads bounded and owned, a batch's
input read line by line before it starts, its lines answered once each through the live path,
cancelled and resumed. The real SDK on real servers: tests/e2e/test_batches_e2e.py."""

from __future__ import annotations

import io
import json
import time
from typing import Optional

import pytest

from proxy.access.keyring import owner_of
from proxy.batches import files as files_module
from proxy.batches.files import FileStore
from proxy.batches.runner import KEPT_NOT, BatchRunner
from proxy.batches.store import WINDOW, BatchStore
from proxy.core.errors import NotFoundError
from tests.polling import wait_for

KEYS = ("sk-alice", "sk-bob")
ALICE = owner_of(b"sk-alice")  # what the key sk-alice owns is owned so


def jsonl(lines: list) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_line(custom_id: str, text: str = "hi", **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "test-model", "messages": [{"role": "user", "content": text}],
                     **body}}  # fmt: skip


def upload(client, key: str, content: bytes, purpose: str = "batch"):
    return client.post(
        "/v1/files",
        data={"purpose": purpose, "file": (io.BytesIO(content), "lines.jsonl")},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )


def as_key(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_client, tmp_path):
    return make_client(api_key=list(KEYS), admin_key="admin", files_dir=str(tmp_path / "files"))


def run_batch(client, key: str, lines: list, headers: Optional[dict] = None) -> dict:
    """The batch of ``lines`` made by ``key`` (``headers``: more, on the request that makes
    it), once it ended."""
    file_id = upload(client, key, jsonl(lines)).get_json()["id"]
    with client.post("/v1/batches", json={"input_file_id": file_id,
                                          "endpoint": "/v1/chat/completions",
                                          "completion_window": "24h"},
                     headers={**as_key(key), **(headers or {})}) as made:  # fmt: skip
        assert made.status_code == 200, made.get_json()
        batch = made.get_json()
    assert batch["status"] in ("validating", "in_progress")

    def ended() -> bool:
        nonlocal batch
        batch = client.get(f"/v1/batches/{batch['id']}", headers=as_key(key)).get_json()
        return batch["status"] in ("completed", "failed", "cancelled", "expired")

    wait_for(ended, "the batch to end", timeout=30)
    return batch


def content(client, key: str, file_id: str) -> list:
    with client.get(f"/v1/files/{file_id}/content", headers=as_key(key)) as answer:
        assert answer.status_code == 200
        return [json.loads(line) for line in answer.data.splitlines()]


def test_a_batch_answers_each_line_once_through_the_live_path(keyed):
    batch = run_batch(keyed, "sk-alice", [chat_line(f"q{n}", f"question {n}") for n in range(5)])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    answers = content(keyed, "sk-alice", batch["output_file_id"])
    assert sorted(a["custom_id"] for a in answers) == [f"q{n}" for n in range(5)]
    for answer in answers:
        assert answer["response"]["status_code"] == 200
        assert answer["response"]["body"]["object"] == "chat.completion"
    assert batch["error_file_id"] is None


def test_a_batchs_requests_are_in_the_inspector_when_capture_is_on(make_client, tmp_path):
    client = make_client(api_key=list(KEYS), admin_key="admin", capture="on",
                         files_dir=str(tmp_path / "files"))  # fmt: skip
    batch = run_batch(client, "sk-alice", [chat_line(f"q{n}", f"question {n}") for n in range(3)])
    assert batch["status"] == "completed"
    kept = client.get("/admin/exchanges", headers=as_key("admin")).get_json()["exchanges"]
    asked = [each for each in kept if each["path"] == "/v1/chat/completions"]
    assert len(asked) == 3 and {each["key"] for each in asked} == {"key-1"}


def test_a_line_the_live_path_refuses_is_in_the_error_file(keyed):
    lines = [chat_line("good"), chat_line("bad", max_tokens=-3)]
    batch = run_batch(keyed, "sk-alice", lines)
    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    (error,) = content(keyed, "sk-alice", batch["error_file_id"])
    assert error["custom_id"] == "bad" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "max_tokens"


@pytest.mark.parametrize(
    "line, code, param",
    [
        (b"{not json", "invalid_json_line", None),
        (
            json.dumps({**chat_line("x"), "url": "/v1/embeddings"}).encode(),
            "mismatched_endpoint",
            "url",
        ),
        (json.dumps({**chat_line("x"), "method": "GET"}).encode(), "invalid_method", "method"),
        (
            json.dumps(
                {
                    "custom_id": "x",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": []},
                }
            ).encode(),
            "missing_model",
            "body.model",
        ),  # fmt: skip
        (json.dumps(chat_line("q0")).encode(), "duplicate_custom_id", "custom_id"),
    ],
    ids=["not-json", "another-endpoint", "not-post", "no-model", "custom-id-twice"],
)
def test_a_malformed_line_fails_the_batch_before_it_starts_naming_it(keyed, line, code, param):
    content_ = jsonl([chat_line("q0")]) + line + b"\n"
    file_id = upload(keyed, "sk-alice", content_).get_json()["id"]
    made = keyed.post("/v1/batches", json={"input_file_id": file_id,
                                           "endpoint": "/v1/chat/completions",
                                           "completion_window": "24h"},
                      headers=as_key("sk-alice")).get_json()  # fmt: skip
    batch = made

    def ended():
        nonlocal batch
        batch = keyed.get(f"/v1/batches/{made['id']}", headers=as_key("sk-alice")).get_json()
        return batch["status"] != "validating"

    wait_for(ended, "the batch to be read", timeout=30)
    assert batch["status"] == "failed" and batch["request_counts"]["completed"] == 0
    (fault,) = batch["errors"]["data"]
    assert (fault["code"], fault["param"], fault["line"]) == (code, param, 2)


def test_files_and_batches_are_their_keys_own(keyed):
    made = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()
    assert made["object"] == "file" and made["purpose"] == "batch" and made["bytes"] > 0
    for path in (f"/v1/files/{made['id']}", f"/v1/files/{made['id']}/content"):
        assert keyed.get(path, headers=as_key("sk-bob")).status_code == 404
        with keyed.get(path, headers=as_key("sk-alice")) as answer:
            assert answer.status_code == 200
    assert keyed.get("/v1/files", headers=as_key("sk-bob")).get_json()["data"] == []
    refused = keyed.post("/v1/batches", json={"input_file_id": made["id"],
                                              "endpoint": "/v1/chat/completions",
                                              "completion_window": "24h"},
                         headers=as_key("sk-bob"))  # fmt: skip
    assert refused.status_code == 404
    assert keyed.delete(f"/v1/files/{made['id']}", headers=as_key("sk-bob")).status_code == 404
    gone = keyed.delete(f"/v1/files/{made['id']}", headers=as_key("sk-alice")).get_json()
    assert gone == {"id": made["id"], "object": "file", "deleted": True}


@pytest.mark.parametrize(
    "body, param",
    [
        ({"endpoint": "/v1/images", "completion_window": "24h"}, "endpoint"),
        ({"endpoint": "/v1/chat/completions", "completion_window": "1h"}, "completion_window"),
        (
            {"endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": {"k": 3}},
            "metadata",
        ),  # fmt: skip
        (
            {
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "input_file_id": "file-../../etc",
            },
            "id",
        ),  # fmt: skip
    ],
    ids=["endpoint", "window", "metadata", "a-path-for-an-id"],
)
def test_a_batch_asked_wrongly_is_refused_naming_the_field(keyed, body, param):
    body = {"input_file_id": upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"],
            **body}  # fmt: skip
    answer = keyed.post("/v1/batches", json=body, headers=as_key("sk-alice"))
    assert answer.status_code in (400, 404) and answer.get_json()["error"]["param"] == param


def test_an_upload_past_its_bounds_is_refused_and_not_kept(make_client, tmp_path):
    folder = tmp_path / "files"
    client = make_client(max_file_size=1000, max_batch_lines=3, files_dir=str(folder))
    big = upload(client, "", b"x" * 2000)
    assert big.status_code == 400 and "--max-file-size" in big.get_json()["error"]["message"]
    form = b'--x\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    huge = client.post("/v1/files", data=form + b"x" * (2 << 20) + b"\r\n--x--\r\n",
                       content_type="multipart/form-data; boundary=x")  # fmt: skip
    # larger than the form may be: told from its length, before it is read
    assert huge.status_code == 413 and "--max-file-size" in huge.get_json()["error"]["message"]
    many = upload(client, "", jsonl([chat_line(f"q{n}") for n in range(4)])[:999])
    assert many.status_code == 400 and "--max-batch-lines" in many.get_json()["error"]["message"]
    wrong = upload(client, "", jsonl([chat_line("q")]), purpose="fine-tune")
    assert wrong.status_code == 400 and wrong.get_json()["error"]["param"] == "purpose"
    assert not [path for path in folder.glob("*") if path.is_file()]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"},
            "expires_after.anchor",
        ),
        (
            {"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"},
            "expires_after.seconds",
        ),
        (
            {"expires_after[anchor]": "created_at", "expires_after[seconds]": "1e9"},
            "expires_after.seconds",
        ),
        ({"expires_after[seconds]": "3600"}, "expires_after.anchor"),
    ],  # fmt: skip
)
def test_an_expiry_asked_wrongly_is_refused_naming_the_field(keyed, fields, param):
    answer = keyed.post("/v1/files", data={"purpose": "batch", **fields,
                                           "file": (io.BytesIO(jsonl([chat_line("q")])), "f")},
                        headers=as_key("sk-alice"), content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 400 and answer.get_json()["error"]["param"] == param


def test_a_file_expires_as_its_client_asked_or_at_the_retentions_end(tmp_path):
    clock = [1000.0]
    files = FileStore(str(tmp_path), max_bytes=100, max_lines=5, per_key=5,
                      retention=7200, clock=lambda: clock[0])  # fmt: skip
    asked = files.upload("alice", io.BytesIO(b"a\n"), "a.jsonl", "batch", expires_after=3600)
    kept = files.upload("alice", io.BytesIO(b"b\n"), "b.jsonl", "batch")
    assert (asked.shown()["expires_at"], kept.expires_at) == (4600, 8200)
    clock[0] = 4600.0
    with pytest.raises(NotFoundError):
        files.get("alice", asked.id)
    assert [each.id for each in files.listed("alice")] == [kept.id]
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == [
        f"{kept.id}.data", f"{kept.id}.json"]  # fmt: skip
    assert [path.name for path in (tmp_path / "owners" / "alice").iterdir()] == [kept.mark]
    forever = FileStore(str(tmp_path), max_bytes=100, max_lines=5, per_key=5)
    assert forever.upload("bob", io.BytesIO(b"c\n"), "c.jsonl", "batch").expires_at is None


def test_a_disk_that_fills_refuses_the_upload_in_openais_shape(keyed, tmp_path, monkeypatch):
    """The kernel's own ENOSPC: the upload is written to /dev/full."""
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    monkeypatch.setattr(files_module.secrets, "token_hex", lambda size: "f" * (2 * size))
    (folder / f"file-{'f' * 24}.data").symlink_to("/dev/full")
    answer = upload(keyed, "sk-alice", jsonl([chat_line("q")]))
    assert answer.status_code == 503
    error = answer.get_json()["error"]
    assert error["code"] == "store_unavailable" and "disk is full" in error["message"]
    assert not list(folder.iterdir())  # nothing of it kept


def test_an_answer_a_full_disk_cannot_keep_is_asked_again_once_there_is_room(keyed):
    state = keyed.application.extensions["batches"]
    file_id = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"]
    record = state.batches.create(ALICE, "/v1/chat/completions", file_id, "24h", None)
    full = state.batches.folder / f"{record.id}.{state.batches.runner}.out.jsonl"
    full.symlink_to("/dev/full")
    state.runner.start()

    def shown():
        return keyed.get(f"/v1/batches/{record.id}", headers=as_key("sk-alice")).get_json()

    wait_for(lambda: shown().get("x-oai-proxy-paused") == KEPT_NOT, "the batch to wait")
    assert shown()["status"] == "in_progress" and shown()["request_counts"]["completed"] == 0
    full.unlink()  # room again
    wait_for(lambda: shown()["status"] == "completed", "the batch to end", timeout=30)
    assert shown()["request_counts"] == {"total": 1, "completed": 1, "failed": 0}


def test_a_batchs_answers_gathered_hold_each_request_once_and_whole(tmp_path):
    one, two = BatchStore(str(tmp_path), runner="one"), BatchStore(str(tmp_path), runner="two")
    record = one.create("alice", "/v1/chat/completions", "file-1", "24h", None)
    one.answer(record.id, {"custom_id": "a", "n": 1}, True)
    two.answer(record.id, {"custom_id": "b", "n": 1}, True)
    two.answer(record.id, {"custom_id": "a", "n": 2}, True)  # taken over, and answered again
    with open(one.folder / f"{record.id}.one.out.jsonl", "ab") as cut:
        cut.write(b'{"custom_id": "c", "n"')  # a crash mid-write
    assert one.answered(record.id) == {"a": True, "b": True}
    whole = one.gathered(record.id, True)
    assert [json.loads(line) for line in whole.read_bytes().splitlines()] == [
        {"custom_id": "a", "n": 1},
        {"custom_id": "b", "n": 1},
    ]
    assert one.gathered(record.id, False) is None


def test_a_batch_a_stopped_process_left_is_taken_up_once_the_app_is_whole(
    make_client, keyed, tmp_path, monkeypatch
):
    """The runner asks the app at once: its routes must all be there by then."""
    file_id = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"]
    BatchStore(str(tmp_path / "files")).create(ALICE, "/v1/chat/completions", file_id, "24h",
                                               None)  # fmt: skip
    routes_then = []
    monkeypatch.setattr(BatchRunner, "start",
                        lambda runner: routes_then.append(set(runner.app.blueprints)))  # fmt: skip
    client = make_client(api_key=list(KEYS), files_dir=str(tmp_path / "files"))
    assert routes_then == [set(client.application.blueprints)]
    assert {"batches", "openai"} <= routes_then[0]


def test_a_cancelled_batch_keeps_what_it_answered(keyed, tmp_path):
    store = BatchStore(str(tmp_path / "files"))
    file_id = upload(keyed, "sk-alice", jsonl([chat_line(f"q{n}") for n in range(3)]))
    record = store.create(ALICE, "/v1/chat/completions", file_id.get_json()["id"], "24h", None)
    store.cancel(record.id)  # before a runner takes it
    answer = keyed.post(f"/v1/batches/{record.id}/cancel", headers=as_key("sk-alice"))
    assert answer.get_json()["status"] == "cancelling"
    keyed.application.extensions["batches"].runner.start()

    def ended():
        return keyed.get(f"/v1/batches/{record.id}", headers=as_key("sk-alice")).get_json()

    wait_for(lambda: ended()["status"] == "cancelled", "the cancel", timeout=30)
    assert ended()["request_counts"]["completed"] == 0


def test_a_spent_budget_pauses_a_batch_rather_than_failing_it(make_client, tmp_path):
    """The key's day cannot take a request: the requests wait, the batch saying why; none is
    answered with the refusal."""
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "thrifty"\nkey = "sk-t"\ntokens_per_day = 1\n')
    client = make_client(keys=str(keys), files_dir=str(tmp_path / "files"))
    file_id = upload(client, "sk-t", jsonl([chat_line(f"q{n}") for n in range(3)]))
    made = client.post("/v1/batches", json={"input_file_id": file_id.get_json()["id"],
                                            "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"},
                       headers=as_key("sk-t")).get_json()  # fmt: skip

    def batch():
        return client.get(f"/v1/batches/{made['id']}", headers=as_key("sk-t")).get_json()

    wait_for(lambda: batch().get("x-oai-proxy-paused"), "the batch to pause", timeout=30)
    shown = batch()
    assert shown["status"] == "in_progress" and "tokens of the day" in shown["x-oai-proxy-paused"]
    assert shown["request_counts"] == {"total": 3, "completed": 0, "failed": 0}
    assert shown["error_file_id"] is None


def test_a_message_batch_runs_on_the_same_runner_and_answers_in_anthropics_words(keyed):
    params = {"model": "test-model", "max_tokens": 16,
              "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    asked = [{"custom_id": "good", "params": params},
             {"custom_id": "bad", "params": {**params, "max_tokens": -1}}]  # fmt: skip
    made = keyed.post("/v1/messages/batches", json={"requests": asked}, headers=as_key("sk-alice"))
    batch = made.get_json()
    assert made.status_code == 200 and batch["type"] == "message_batch", batch
    assert batch["id"].startswith("msgbatch_") and batch["processing_status"] == "in_progress"

    def ended() -> bool:
        nonlocal batch
        batch = keyed.get(
            f"/v1/messages/batches/{batch['id']}", headers=as_key("sk-alice")
        ).get_json()
        return batch["processing_status"] == "ended"

    wait_for(ended, "the message batch to end", timeout=30)
    assert batch["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1,
                                       "canceled": 0, "expired": 0}  # fmt: skip
    assert batch["results_url"].endswith(f"/v1/messages/batches/{batch['id']}/results")
    with keyed.get(
        f"/v1/messages/batches/{batch['id']}/results", headers=as_key("sk-alice")
    ) as got:
        results = {
            line["custom_id"]: line["result"] for line in map(json.loads, got.data.splitlines())
        }
    assert (
        results["good"]["type"] == "succeeded" and results["good"]["message"]["type"] == "message"
    )
    assert results["bad"]["type"] == "errored" and results["bad"]["error"]["type"] == "error"
    assert (
        keyed.get(f"/v1/messages/batches/{batch['id']}", headers=as_key("sk-bob")).status_code
        == 404
    )
    listed = keyed.get("/v1/messages/batches", headers=as_key("sk-alice")).get_json()["data"]
    assert [each["id"] for each in listed] == [batch["id"]]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"requests": []}, "requests"),
        ({"requests": [{"custom_id": "a b", "params": {}}]}, "requests.0.custom_id"),
        (
            {"requests": [{"custom_id": "a", "params": {"stream": True}}]},
            "requests.0.params.stream",
        ),
        (
            {"requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}]},
            "requests.1.custom_id",
        ),  # fmt: skip
    ],
    ids=["none", "custom-id", "streamed", "custom-id-twice"],
)
def test_a_message_batch_asked_wrongly_is_refused_in_anthropics_shape(keyed, body, param):
    answer = keyed.post("/v1/messages/batches", json=body, headers=as_key("sk-alice"))
    assert answer.status_code == 400
    assert answer.get_json()["type"] == "error" and param in answer.get_json()["error"]["message"]


def test_a_batch_past_its_window_ends_expired(keyed, tmp_path):
    file_id = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"]
    long_ago = BatchStore(str(tmp_path / "files"), clock=lambda: time.time() - 2 * WINDOW)
    record = long_ago.create(ALICE, "/v1/chat/completions", file_id, "24h", None)
    keyed.application.extensions["batches"].runner.start()

    def shown():
        return keyed.get(f"/v1/batches/{record.id}", headers=as_key("sk-alice")).get_json()

    wait_for(lambda: shown()["status"] == "expired", "the batch to expire", timeout=30)
    assert shown()["request_counts"] == {"total": 1, "completed": 0, "failed": 0}
    assert shown()["expired_at"] is not None and shown()["output_file_id"] is None
    (left,) = content(keyed, "sk-alice", shown()["error_file_id"])  # as OpenAI's says
    assert (left["custom_id"], left["response"]) == ("q", None)
    assert left["error"]["code"] == "batch_expired"


def test_a_batch_under_way_is_on_metrics(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "thrifty"\nkey = "sk-t"\ntokens_per_day = 1\n')
    client = make_client(keys=str(keys), files_dir=str(tmp_path / "files"), metrics="on",
                         metrics_key="m")  # fmt: skip
    file_id = upload(client, "sk-t", jsonl([chat_line(f"q{n}") for n in range(3)]))
    made = client.post("/v1/batches", json={"input_file_id": file_id.get_json()["id"],
                                            "endpoint": "/v1/chat/completions",
                                            "completion_window": "24h"},
                       headers=as_key("sk-t")).get_json()  # fmt: skip
    served = client.application.extensions["proxy"].router.resolve("test-model").id
    series = (f'oai_proxy_batch_requests{{batch="{made["id"]}",model="{served}",'
              f'state="waiting"}} 3.0')  # fmt: skip
    wait_for(lambda: series in client.get("/metrics", headers=as_key("m")).get_data(as_text=True),
             "the batch on /metrics", timeout=30)  # fmt: skip
