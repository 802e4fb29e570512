"""What one tenant's batches can do to the others' over the app (the fake backend): a batch
whose input is gone, a line that cannot be read or run, each fails alone while the runner
goes on; a file a batch reads is not deleted under it; a key's batches are bounded; what a
key owns is its secret's, never its name's. The same on real servers, against a key that
tries: tests/e2e/test_batch_tenants_e2e.py."""

from __future__ import annotations

import io
import json
import threading

import pytest

from proxy.access.keyring import owner_of
from proxy.app import create_app
from proxy.batches import runner as batchrunner
from proxy.batches.store import BatchStore
from proxy.config.settings import Settings
from proxy.core.party import LOWEST
from tests.batches.test_views import as_key, chat_line, content, jsonl, run_batch, upload
from tests.fakes.backend import FakeBackend
from tests.polling import wait_for

KEYS = ("sk-alice", "sk-bob")


@pytest.fixture
def keyed(make_client, tmp_path):
    return make_client(api_key=list(KEYS), admin_key="admin", files_dir=str(tmp_path / "files"))


def make(client, key: str, file_id: str, endpoint: str = "/v1/chat/completions"):
    return client.post("/v1/batches", json={"input_file_id": file_id, "endpoint": endpoint,
                                            "completion_window": "24h"},
                       headers=as_key(key))  # fmt: skip


def shown(client, key: str, batch_id: str) -> dict:
    return client.get(f"/v1/batches/{batch_id}", headers=as_key(key)).get_json()


def test_a_batch_whose_input_is_gone_fails_alone_and_the_others_run(keyed, tmp_path):
    state = keyed.application.extensions["batches"]
    gone = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"]
    doomed = BatchStore(str(tmp_path / "files")).create(owner_of(b"sk-alice"),
                                                        "/v1/chat/completions", gone, "24h",
                                                        None)  # fmt: skip
    state.files.delete(None, gone)  # as a delete between the batch's making and its reading
    batch = run_batch(keyed, "sk-bob", [chat_line(f"q{n}") for n in range(3)])
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 3
    wait_for(lambda: shown(keyed, "sk-alice", doomed.id)["status"] == "failed", "its failure")
    (fault,) = shown(keyed, "sk-alice", doomed.id)["errors"]["data"]
    assert (fault["code"], fault["param"]) == ("input_file_unreadable", "input_file_id")
    assert "deleted or expired" in fault["message"]
    assert state.runner._thread.is_alive()
    assert run_batch(keyed, "sk-alice", [chat_line("again")])["status"] == "completed"


def test_a_file_a_batch_under_way_reads_is_not_deleted_under_it(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "thrifty"\nkey = "sk-t"\ntokens_per_day = 1\n')
    client = make_client(keys=str(keys), files_dir=str(tmp_path / "files"))
    file_id = upload(client, "sk-t", jsonl([chat_line("q")])).get_json()["id"]
    batch = make(client, "sk-t", file_id).get_json()  # waits: its key's day is spent
    refused = client.delete(f"/v1/files/{file_id}", headers=as_key("sk-t"))
    assert refused.status_code == 409, refused.get_json()
    error = refused.get_json()["error"]
    assert error["param"] == "file_id" and batch["id"] in error["message"]
    client.post(f"/v1/batches/{batch['id']}/cancel", headers=as_key("sk-t"))
    wait_for(lambda: shown(client, "sk-t", batch["id"])["status"] == "cancelled", "the cancel")
    assert client.delete(f"/v1/files/{file_id}", headers=as_key("sk-t")).status_code == 200


def test_a_line_that_cannot_be_run_is_its_own_error(keyed, monkeypatch):
    """Whatever fails inside the runner as a line runs is that line's error: the others are
    answered, the batch ends."""
    real = batchrunner.read_request

    def failing(text, number, *rest):
        if number == 2:
            raise RuntimeError("a fault of the proxy's own")
        return real(text, number, *rest)

    monkeypatch.setattr(batchrunner, "read_request", failing)
    batch = run_batch(keyed, "sk-alice", [chat_line(f"q{n}") for n in range(3)])
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    (error,) = content(keyed, "sk-alice", batch["error_file_id"])
    assert error["custom_id"] == "q1" and error["error"]["code"] == "internal_error"
    assert "RuntimeError" not in json.dumps(error)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "m", "messages": [{"role": "user", "content": [[[[[[[[[[[]]]]]]]]]]]}]},
         "body.messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}] * 2, "extra": [[]] * 40},
         None),
    ],
    ids=["nested-deeper", "more-containers"],
)  # fmt: skip
def test_a_line_past_a_live_bodys_bounds_fails_its_batch_before_it_starts(
    make_client, tmp_path, body, param
):
    client = make_client(api_key=list(KEYS), files_dir=str(tmp_path / "files"), max_nesting=8,
                         max_containers=32)  # fmt: skip
    line = {"custom_id": "deep", "method": "POST", "url": "/v1/chat/completions", "body": body}
    batch = run_batch(client, "sk-alice", [chat_line("fine"), line])
    assert batch["status"] == "failed"
    (fault,) = batch["errors"]["data"]
    assert (fault["line"], fault["code"], fault["param"]) == (2, "invalid_request", param)
    assert "--max-" in fault["message"]


def test_a_batch_another_process_ended_is_never_taken_up_again(keyed):
    """A process that listed the batches under way before another ended one, and takes its
    lock after, finds it ended: its good lines are not run, its failure stays."""
    line = {
        "custom_id": "deep",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        "junk": 1,
    }
    batch = run_batch(keyed, "sk-alice", [chat_line("fine"), line])  # fmt: skip
    assert batch["status"] == "failed"
    runner = keyed.application.extensions["batches"].runner
    ended = runner.batches.get(None, batch["id"])
    assert runner.keeper.keep(ended) is None
    assert runner.queue.tally(ended.id, ["m"]) is None  # nothing of it queued
    assert shown(keyed, "sk-alice", batch["id"])["status"] == "failed"


def test_a_lines_priority_never_goes_before_the_batchs(make_client, tmp_path):
    backend = FakeBackend()
    client = make_client(fake=backend, api_key=list(KEYS), files_dir=str(tmp_path / "files"))
    batch = run_batch(client, "sk-alice", [chat_line("q", priority=0)])
    assert batch["request_counts"]["completed"] == 1
    (asked,) = backend.requests
    assert asked.caller.party.priority == LOWEST


def test_a_line_naming_a_model_no_one_serves_fails_its_batch_naming_it_shortly(runtime, tmp_path):
    """Checked against the models served as the batch starts: a batch holds the names of
    models that are, never a client's text (its record, the metrics' labels)."""
    models = tmp_path / "models.toml"
    models.write_text('[models.tiny]\nupstreams = ["http://127.0.0.1:9"]\n')
    app = create_app(Settings.of(config=str(models), api_key=list(KEYS),
                                 files_dir=str(tmp_path / "f"),
                                 usage_db=str(tmp_path / "usage.sqlite3")), runtime)  # fmt: skip
    client = app.test_client()
    name = "no-such-model-" + "x" * 2000
    batch = run_batch(client, "sk-alice", [chat_line("q", model=name)])
    assert batch["status"] == "failed" and batch["request_counts"]["total"] == 0
    (fault,) = batch["errors"]["data"]
    assert (fault["code"], fault["param"]) == ("model_not_found", "body.model")
    assert len(fault["message"]) < 200
    app.extensions["batches"].runner.stop()
    app.extensions["proxy"].router.close()


def test_a_key_has_a_bounded_number_of_batches_and_lines_under_way(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "thrifty"\nkey = "sk-t"\ntokens_per_day = 1\n')
    client = make_client(keys=str(keys), files_dir=str(tmp_path / "files"), batches_per_key=2,
                         batch_lines_per_key=5)  # fmt: skip
    two = upload(client, "sk-t", jsonl([chat_line("a"), chat_line("b")])).get_json()["id"]
    assert make(client, "sk-t", two).status_code == 200  # waits: its key's day is spent
    wait_for(lambda: client.get("/v1/batches", headers=as_key("sk-t")).get_json()["data"][0][
        "status"] == "in_progress", "the batch to start")  # fmt: skip
    four = upload(client, "sk-t", jsonl([chat_line(f"c{n}") for n in range(4)])).get_json()["id"]
    lines = make(client, "sk-t", four)
    assert lines.status_code == 429 and "--batch-lines-per-key" in lines.get_json()["error"][
        "message"]  # fmt: skip
    assert make(client, "sk-t", two).status_code == 200
    batches = make(client, "sk-t", two)
    assert batches.status_code == 429 and "--batches-per-key" in batches.get_json()["error"][
        "message"]  # fmt: skip
    assert batches.headers["Retry-After"]


def test_what_a_key_owns_is_not_its_names_once_another_secret_takes_the_name(make_client, tmp_path):
    folder = str(tmp_path / "files")
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "alice"\nkey = "sk-first"\n')
    first = make_client(keys=str(keys), files_dir=folder)
    made = upload(first, "sk-first", jsonl([chat_line("q")])).get_json()
    keys.write_text('[[keys]]\nname = "alice"\nkey = "sk-second"\n')  # revoked, re-added
    second = make_client(keys=str(keys), files_dir=folder)
    assert second.get("/v1/files", headers=as_key("sk-second")).get_json()["data"] == []
    assert second.get(f"/v1/files/{made['id']}", headers=as_key("sk-second")).status_code == 404


def test_uploads_at_once_never_pass_the_keys_bound(make_client, tmp_path):
    client = make_client(api_key=list(KEYS), files_dir=str(tmp_path / "files"), files_per_key=2)
    codes = []

    def once(number: int) -> None:
        app = client.application.test_client()
        codes.append(upload(app, "sk-alice", jsonl([chat_line(f"q{number}")])).status_code)

    threads = [threading.Thread(target=once, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200, 200] + [400] * 8
    assert len(client.get("/v1/files", headers=as_key("sk-alice")).get_json()["data"]) == 2


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "³⁶⁰⁰"},
         "expires_after.seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "٣٦٠٠"},
         "expires_after.seconds"),
    ],
    ids=["superscript", "arabic-indic"],
)  # fmt: skip
def test_digits_of_other_scripts_are_refused_naming_the_field(keyed, fields, param):
    answer = keyed.post("/v1/files", data={"purpose": "batch", **fields,
                                           "file": (io.BytesIO(jsonl([chat_line("q")])), "f")},
                        headers=as_key("sk-alice"), content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 400 and answer.get_json()["error"]["param"] == param


def test_a_file_name_with_a_line_break_is_refused_and_never_kept(keyed):
    answer = keyed.post("/v1/files", data={"purpose": "batch",
                                           "file": (io.BytesIO(b"{}\n"), "a\r\nX-Evil: 1")},
                        headers=as_key("sk-alice"), content_type="multipart/form-data")  # fmt: skip
    assert answer.status_code == 400 and answer.get_json()["error"]["param"] == "file"
    assert keyed.get("/v1/files", headers=as_key("sk-alice")).get_json()["data"] == []


def test_a_runner_that_stopped_is_started_again_by_the_next_look(keyed):
    state = keyed.application.extensions["batches"]
    file_id = upload(keyed, "sk-alice", jsonl([chat_line("q")])).get_json()["id"]
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    state.runner._thread = dead  # as a thread that died
    record = BatchStore(str(state.files.folder)).create(owner_of(b"sk-alice"),
                                                        "/v1/chat/completions", file_id, "24h",
                                                        None)  # fmt: skip
    shown(keyed, "sk-alice", record.id)  # the look: its runner runs again
    wait_for(lambda: shown(keyed, "sk-alice", record.id)["status"] == "completed", "the batch")


def test_the_fleet_page_names_a_batchs_key_never_its_owner(make_client, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[[keys]]\nname = "thrifty"\nkey = "sk-t"\ntokens_per_day = 1\n')
    client = make_client(keys=str(keys), files_dir=str(tmp_path / "files"), admin_key="admin")
    file_id = upload(client, "sk-t", jsonl([chat_line("q")])).get_json()["id"]
    made = make(client, "sk-t", file_id).get_json()  # waits: its key's day is spent
    shown = client.get("/status", headers=as_key("admin")).get_json()["batches"]
    assert [(each["id"], each["owner"]) for each in shown] == [(made["id"], "thrifty")]
