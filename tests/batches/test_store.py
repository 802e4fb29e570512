"""The batches' records and their marks: a listing reads only its page's records, the runners
only the batches under way, and the batches ended past the retention are forgotten."""

from __future__ import annotations

import shutil

import pytest

from proxy.batches.store import BatchStore

FILE = "file-" + "0" * 24


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def store(tmp_path) -> BatchStore:
    return BatchStore(str(tmp_path), clock=Clock())


def made(store: BatchStore, owner: str, count: int, api: str = "openai") -> list:
    return [store.create(owner, "/v1/chat/completions", FILE, "24h", None, api).id
            for _ in range(count)]  # fmt: skip


def test_a_page_reads_only_its_records_newest_first(store, monkeypatch):
    alices = made(store, "alice", 30)
    made(store, "bob", 5)
    made(store, "alice", 2, api="anthropic")
    read = []
    real = BatchStore.get

    def counted(self, owner, id):
        read.append(id)
        return real(self, owner, id)

    monkeypatch.setattr(BatchStore, "get", counted)
    found, more = store.page("alice", "openai", None, 10)
    assert [each.id for each in found] == alices[::-1][:10] and more
    assert len(read) == 11  # the page, and one to tell there is more
    found, more = store.page("alice", "openai", alices[5], 10)
    assert [each.id for each in found] == alices[4::-1] and not more
    everyone, _ = store.page(None, "openai", None, 100)
    assert len(everyone) == 35


def test_the_runners_look_at_the_batches_under_way_alone(store):
    ended = made(store, "alice", 20)
    for id in ended:
        store.save(store.get(None, id).now("completed", store.clock()))
    (live,) = made(store, "alice", 1)
    assert [each.id for each in store.live()] == [live]
    assert store.live("bob") == [] and store.reading(FILE).id == live


def test_a_batch_ended_past_the_retention_is_forgotten(store):
    old, recent, running = made(store, "alice", 3)
    store.save(store.get(None, old).now("completed", store.clock()))
    store.clock.now += 1000
    store.save(store.get(None, recent).now("cancelled", store.clock()))
    store.prune(500)
    assert [each.id for each in store.page("alice", "openai", None, 10)[0]] == [running, recent]
    assert not (store.folder / f"{old}.json").exists()
    assert not list((store.folder / "ended").glob(f"*{old}"))


def test_a_folder_kept_before_marks_is_marked_as_it_opens(tmp_path):
    store = BatchStore(str(tmp_path), clock=Clock())
    (id,) = made(store, "alice", 1)
    for folder in ("live", "owners", "ended"):
        shutil.rmtree(store.folder / folder, ignore_errors=True)
    again = BatchStore(str(tmp_path))
    assert [each.id for each in again.live()] == [id]
    assert [each.id for each in again.page("alice", "openai", None, 5)[0]] == [id]
