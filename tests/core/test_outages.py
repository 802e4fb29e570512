"""A store of the proxy's own that fails: refused as ``store_unavailable`` naming it, logged once
per outage and once at its end, tried once a second meanwhile; and at the gate, each key's
choice: refused (the default), or served uncounted with its charges kept for later."""

from __future__ import annotations

import logging
import sqlite3
import threading

import pytest

from proxy.access import journal as journal_module
from proxy.access.budgets import Budgets
from proxy.access.gate import Access
from proxy.access.journal import Journal
from proxy.access.keyring import Keyring, KeySpec
from proxy.access.usage import SqliteUsage
from proxy.core.errors import StoreUnavailableError
from proxy.core.outages import Outages


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail() -> None:
    raise sqlite3.OperationalError("database or disk is full")


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    clock = Clock()
    outages = Outages("a SQLite file", clock=clock)
    changes = []
    outages.on_change = lambda store, up: changes.append((store, up))
    tried = []
    for _ in range(3):
        with pytest.raises(StoreUnavailableError) as error:
            with outages.reaching("usage"):
                tried.append(True)
                fail()
        clock.now += 0.3
    assert len(tried) == 1  # the others within the second refused at once
    assert (error.value.status, error.value.code, error.value.retry_after) == (
        503,
        "store_unavailable",
        5,
    )
    assert error.value.message.startswith("the usage and budget store (a SQLite file)")
    assert "disk is full" not in error.value.message  # the store's own words are the log's
    clock.now += 1.0
    with outages.reaching("usage"):
        pass
    assert outages.is_up("usage") and changes == [("usage", False), ("usage", True)]
    lines = [  # this test's own: other tests' apps may log from their threads meanwhile
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.WARNING and record.thread == threading.get_ident()
    ]
    assert len(lines) == 2
    assert "cannot be used: OperationalError: database or disk is full" in lines[0]
    assert "is back after 1.9s" in lines[1]


class DownLimiter:
    def admit(self, key):
        fail()

    def charge(self, key, tokens):
        fail()


class DownUsage(SqliteUsage):
    def spent(self, key, periods):
        fail()

    def apply(self, charges):
        fail()


REFUSE = KeySpec("alice", b"a", rpm=10, tokens_per_day=100)
SERVE = KeySpec("bob", b"b", rpm=10, tokens_per_day=100, serve_in_outage=True)


@pytest.fixture
def access(tmp_path):
    usage = DownUsage(str(tmp_path / "usage.sqlite3"))
    journal = Journal(usage, Outages("Redis", remote=True, clock=Clock()), retrying=False)
    return Access(Keyring([REFUSE, SERVE]), DownLimiter(), journal, b"", Budgets(usage))


@pytest.mark.parametrize("check", ["admit", "check_budget"])
def test_a_key_is_refused_while_the_store_is_down_unless_it_says_serve(access, check):
    with pytest.raises(StoreUnavailableError, match=r"\(Redis\) cannot be used now"):
        getattr(access, check)(REFUSE)
    assert getattr(access, check)(SERVE) is None  # served, uncounted


def test_what_a_served_key_spends_meanwhile_is_charged_once_the_store_is_back(access, tmp_path):
    access.charge(SERVE, "m", 200, 30, 12)
    access.charge(SERVE, "m", 200, 5, 1)
    assert access.journal.kept == 2
    with pytest.raises(StoreUnavailableError, match="usage and budget store"):
        access.usage()  # the admin's view: a 503 naming the store, never a 500
    back = access.journal.store = access.budgets.store = SqliteUsage(
        str(tmp_path / "usage.sqlite3")
    )
    access.outages.clock.now += 5
    assert access.journal.flush()
    assert access.standing(SERVE).spent == {"day": 48}
    assert back.totals()[0]["requests"] == 2 and access.outages.is_up("usage")


@pytest.mark.parametrize(
    "remote, read_tried, read_ends_it", [(True, False, None), (False, True, False)]
)
def test_reads_while_writes_fail(remote, read_tried, read_ends_it):
    """Redis gone fails reads and writes alike: one try a second; a full disk is still read,
    and only a write that works ends its outage."""
    outages = Outages("x", remote=remote, clock=Clock())
    with pytest.raises(StoreUnavailableError):
        with outages.reaching("usage"):
            fail()
    tried = []
    try:
        with outages.reaching("usage", reading=True):
            tried.append(True)
    except StoreUnavailableError:
        pass
    assert bool(tried) is read_tried
    if read_ends_it is not None:
        assert outages.is_up("usage") is read_ends_it


class FullDisk(SqliteUsage):
    """A usage file on a full disk: read as ever, never written."""

    def hold(self, hold, now):
        fail()

    def apply(self, charges):
        fail()


@pytest.mark.parametrize("key, held", [(REFUSE, None), (SERVE, "")], ids=["refuse", "serve"])
def test_a_full_disk_holds_nothing_and_serves_only_the_keys_that_say_so(tmp_path, key, held):
    """What a key spent can still be read, but a hold cannot be written: a key is refused
    unless it says it is served unchecked (a full disk never turns its budget off)."""
    usage = FullDisk(str(tmp_path / "usage.sqlite3"))
    journal = Journal(usage, Outages("a SQLite file", clock=Clock()), retrying=False)
    access = Access(Keyring([REFUSE, SERVE]), DownLimiter(), journal, b"", Budgets(usage))
    standing = access.check_budget(key)  # read: the file is there
    if held is None:
        with pytest.raises(StoreUnavailableError, match="usage and budget store"):
            access.hold(standing, None, 10, 10)
    else:
        assert access.hold(standing, None, 10, 10) == held


def test_a_full_journal_refuses_every_key_with_a_budget_until_the_store_takes_it(
    tmp_path, monkeypatch
):
    """No charge is ever dropped: once the journal holds its bound, a key with a budget
    (even one served in an outage) waits; a key without one is served."""
    monkeypatch.setattr(journal_module, "MAX_KEPT", 2)
    usage = FullDisk(str(tmp_path / "usage.sqlite3"))
    journal = Journal(usage, Outages("a SQLite file", clock=Clock()), retrying=False)
    free = KeySpec("carol", b"c")
    access = Access(Keyring([REFUSE, SERVE, free]), DownLimiter(), journal, b"", Budgets(usage))
    for _ in range(2):
        access.charge(free, "m", 200, 3, 4)
    assert journal.is_full and journal.kept == 2
    for key in (REFUSE, SERVE):
        with pytest.raises(StoreUnavailableError, match="usage and budget store"):
            access.check_budget(key)
    assert access.check_budget(free) is None
    journal.store = access.budgets.store = SqliteUsage(str(tmp_path / "usage.sqlite3"))
    access.outages.clock.now += 5
    assert journal.flush() and access.check_budget(REFUSE).spent == {"day": 0}
