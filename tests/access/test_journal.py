"""The journal of charges: every answer's charge written exactly once and in order, whatever the
store does meanwhile (down, or down after it applied a write), across restarts; past its bound
a charge is dropped and counted, never silently."""

from __future__ import annotations

import errno
import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.access import journal as journal_module
from proxy.access.journal import Journal
from proxy.access.usage import Charge, SqliteUsage
from proxy.core.outages import Outages
from tests.polling import wait_for


class Flaky:
    """A real usage store behind a script of what each write meets: ``up``; ``down`` (refused
    before it is applied); ``lost`` (applied, but the answer lost on the way back)."""

    def __init__(self, store: SqliteUsage, script: list) -> None:
        self.store = store
        self.script = list(script)
        self.order: list = []  # the ids applied, in the order they were first applied

    def apply(self, charges) -> None:
        state = self.script.pop(0) if self.script else "up"
        if state == "down":
            raise sqlite3.OperationalError("database or disk is full")
        before = {row["model"]: row["requests"] for row in self.store.totals()}
        self.store.apply(charges)
        after = {row["model"]: row["requests"] for row in self.store.totals()}
        self.order += [model for model in after if after[model] != before.get(model)]
        if state == "lost":
            raise sqlite3.OperationalError("disk I/O error")

    def totals(self) -> list:
        return self.store.totals()


class Ticking:
    """A clock two seconds later at every look: a store that is down is tried at every use."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 2.0
        return self.now


def watch() -> Outages:
    return Outages("a SQLite file", clock=Ticking())


def replayed(path) -> list:
    """The models of the charges a journal file holds, as the next process would replay them."""
    lines = [line.strip(b"\0") for line in path.read_bytes().split(b"\n")]
    return [json.loads(line)["model"] for line in lines if line]


def charge(number: int) -> Charge:
    """The ``number``-th answer: its model named after it, so the order applied shows."""
    return Charge("alice", f"m{number:02}", number, 1, False, ("day:2026-11-26",), number + 1)


@pytest.mark.parametrize(
    "script, kept_after_each",
    [
        ([], [0, 0, 0, 0, 0]),  # up throughout: each written once its answer is sent
        (["down"], [1, 0, 0, 0, 0]),  # down at the first: written with the next
        (["up", "up", "down"], [0, 0, 1, 0, 0]),  # down mid-way
        (["lost"], [1, 0, 0, 0, 0]),  # the first applied, its answer lost: kept, applied once
        (["down", "down", "lost", "down"], [1, 2, 3, 4, 0]),  # down, lost, down, then back
    ],
)
def test_every_charge_counts_once_and_in_order(tmp_path, script, kept_after_each):
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), script)
    outages = watch()
    journal = Journal(store, outages, str(tmp_path / "journal"), retrying=False)
    kept = []
    for number in range(5):
        journal.keep(charge(number))  # as the answer ends
        journal.flush()  # once it is sent
        kept.append(journal.kept)
        assert outages.is_up("usage") is (journal.kept == 0)
    assert kept == kept_after_each
    assert store.order == [f"m{number:02}" for number in range(5)]
    totals = store.totals()
    assert [row["requests"] for row in totals] == [1] * 5
    assert store.store.spent("alice", ["day:2026-11-26"]) == [sum(range(1, 6))]
    (journaled,) = (tmp_path / "journal").glob("charges-*.jsonl")
    assert replayed(journaled) == []  # nothing left to replay
    journal.close()
    assert not list((tmp_path / "journal").glob("*.jsonl"))


def test_a_charge_is_on_the_disk_before_the_store_has_it(tmp_path):
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), [])
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=False)
    journal.keep(charge(0))
    (journaled,) = (tmp_path / "journal").glob("charges-*.jsonl")
    assert replayed(journaled) == ["m00"]
    assert store.totals() == []  # the client is not kept waiting for the store
    assert journal.flush() and [row["model"] for row in store.totals()] == ["m00"]


ROOT = Path(__file__).resolve().parents[2]
KILLED = """
import os, signal, sqlite3, sys
from proxy.access.journal import Journal
from proxy.core.outages import Outages
from proxy.access.usage import Charge

class Down:
    def apply(self, charges):
        raise sqlite3.OperationalError("database or disk is full")

journal = Journal(Down(), Outages("a SQLite file"), sys.argv[1], retrying=False)
for number in range(3):
    journal.keep(Charge("alice", f"m{number:02}", number, 1, False, ("day:2026-11-26",),
                        number + 1, id=f"id-{number}"))
    journal.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_charges_kept_by_a_process_killed_are_written_once_by_the_next(tmp_path):
    path, folder = str(tmp_path / "usage.sqlite3"), str(tmp_path / "journal")
    running = Journal(Flaky(SqliteUsage(path), []), watch(), folder, retrying=False)
    running.keep(charge(9))  # a process beside it, its charges its own
    killed = subprocess.run([sys.executable, "-c", KILLED, folder], cwd=ROOT, check=False)
    assert killed.returncode == -signal.SIGKILL
    journaled = [each for each in (tmp_path / "journal").glob("charges-*.jsonl")
                 if "m00" in replayed(each)]  # fmt: skip
    assert [replayed(each) for each in journaled] == [["m00", "m01", "m02"]]
    with open(journaled[0], "ab") as file:
        file.write(b'{"key": "alice", "mod')  # the line a kill cut short
    store = Flaky(SqliteUsage(path), [])
    after = Journal(store, watch(), folder, retrying=False)  # the restarted proxy
    assert after.flush() and store.order == ["m00", "m01", "m02"]  # the other's kept: its own
    assert not journaled[0].exists()
    for number in range(3):  # the same charges, written again
        after.keep(Charge("alice", f"m{number:02}", number, 1, False, (), 0, id=f"id-{number}"))
    assert after.flush() and [row["requests"] for row in store.totals()] == [1, 1, 1]


def test_past_its_bound_no_charge_is_dropped_and_the_journal_is_full(tmp_path, monkeypatch, caplog):
    """Full, it keeps every charge, on the disk too, and says so once; the gate refuses the
    keys with budgets meanwhile (tests/access/test_gate.py)."""
    monkeypatch.setattr(journal_module, "MAX_KEPT", 3)
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), ["down"] * 5)
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=False)
    full = []
    for number in range(5):
        journal.keep(charge(number))
        journal.flush()
        full.append(journal.is_full)
    assert (journal.kept, full) == (5, [False, False, True, True, True])
    assert caplog.text.count("keys with budgets are refused") == 1
    journaled = next((tmp_path / "journal").glob("charges-*.jsonl"))
    assert replayed(journaled) == ["m00", "m01", "m02", "m03", "m04"]
    assert journal.flush() and not journal.is_full  # the store is back: all five written
    assert [row["model"] for row in store.totals()] == ["m00", "m01", "m02", "m03", "m04"]


def test_without_a_disk_it_keeps_them_in_memory(tmp_path):
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), ["down"])
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    journal = Journal(store, watch(), str(blocked / "journal"), retrying=False)
    journal.keep(charge(0))
    assert not journal.flush()  # the store down: kept in memory
    assert journal.kept == 1 and journal.flush() and store.order == ["m00"]


def test_an_outage_longer_than_the_file_grows_it_and_its_end_shrinks_it(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "MAPPED", 256)  # room for one charge
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), ["down"] * 5)
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=False)
    for number in range(5):
        journal.keep(charge(number))
        journal.flush()
    (journaled,) = (tmp_path / "journal").glob("charges-*.jsonl")
    assert replayed(journaled) == ["m00", "m01", "m02", "m03", "m04"]
    assert journaled.stat().st_size > 256
    assert journal.flush() and store.order == ["m00", "m01", "m02", "m03", "m04"]
    assert replayed(journaled) == [] and journaled.stat().st_size == 256


def test_a_full_disk_keeps_what_the_file_cannot_hold_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "MAPPED", 256)
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), ["down"] * 3)
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=False)
    journal.keep(charge(0))
    journal.flush()

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_module.os, "pwrite", full)  # the file cannot grow
    for number in range(1, 3):
        journal.keep(charge(number))
        journal.flush()
    (journaled,) = (tmp_path / "journal").glob("charges-*.jsonl")
    assert replayed(journaled) == ["m00"] and journal.kept == 3
    assert journal.flush() and store.order == ["m00", "m01", "m02"]


def test_a_charge_after_the_journal_closed_is_written_at_once(tmp_path):
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), [])
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=False)
    journal.close()  # the process is ending; an answer still finishing charges after it
    journal.keep(charge(0))
    assert journal.kept == 0 and store.order == ["m00"]
    assert not list((tmp_path / "journal").glob("*.jsonl"))


def test_a_running_proxy_writes_the_charges_of_one_that_died_beside_it(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "ADOPT_EVERY", 0.05)
    folder = tmp_path / "journal"
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), [])
    journal = Journal(store, watch(), str(folder), retrying=True)
    try:
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, check=True)  # fmt: skip
        folder.mkdir()
        killed = folder / f"charges-{int(ended.stdout)}.jsonl"  # its last answers, unwritten
        killed.write_bytes(charge(0).line() + charge(1).line() + bytes(64))
        wait_for(lambda: store.order == ["m00", "m01"], "the charges written by the other")
        assert not killed.exists()
    finally:
        journal.close()


def test_its_thread_writes_the_answers_settled_meanwhile_in_one_transaction(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SETTLE_EVERY", 1.0)
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), [])
    batches = []
    apply = store.apply
    monkeypatch.setattr(
        store, "apply", lambda charges: (batches.append(len(charges)), apply(charges))
    )
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=True)
    try:
        journal.keep(charge(0))
        journal.settle()  # its answer sent: the thread is told, the caller goes on
        wait_for(lambda: store.order == ["m00"], "the first charge written at once")
        for number in (1, 2):  # within a second of that write: they wait, and go together
            journal.keep(charge(number))
            journal.settle()
        wait_for(lambda: store.order == ["m00", "m01", "m02"], "the settled charges written")
        assert batches == [1, 2] and journal.kept == 0
    finally:
        journal.close()


def test_its_thread_tries_a_store_that_was_down_again_with_no_answer_to_tell_it(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(journal_module, "RETRY_EVERY", 0.05)
    monkeypatch.setattr(journal_module, "ADOPT_EVERY", 600)  # not at its next look for files
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), ["down", "down"])
    journal = Journal(store, watch(), str(tmp_path / "journal"), retrying=True)
    try:
        journal.keep(charge(0))
        journal.settle()  # the last answer: the store refuses it twice, then takes it
        wait_for(lambda: store.order == ["m00"], "the charge written once the store is back")
        assert journal.kept == 0 and store.script == []
    finally:
        journal.close()


def test_a_proxy_started_over_the_file_of_one_that_died_writes_its_charges_at_once(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(journal_module, "ADOPT_EVERY", 600)  # not at its next look for files
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / "charges-1-dead.jsonl").write_bytes(charge(0).line() + charge(1).line())
    store = Flaky(SqliteUsage(str(tmp_path / "usage.sqlite3")), [])
    journal = Journal(store, watch(), str(folder), retrying=True)
    try:
        wait_for(lambda: store.order == ["m00", "m01"], "the dead one's charges written")
    finally:
        journal.close()
