"""Usage and budget charges: SQLite that survives restarts and several writers, and Redis; each
charge counted once by its id, however often it is written."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from proxy.access import usage
from proxy.access.usage import KEEP_IDS, Charge, RedisUsage, SqliteUsage, new_id

ROW = {"key": "alice", "model": "qwen"}


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteUsage(str(tmp_path / "usage.sqlite3"))
    return RedisUsage(request.getfixturevalue("redis_client"))


def counted(
    requests: int,
    prompt: int,
    completion: int,
    errors: int,
    cached: int = 0,
    searches: int = 0,
    audio: int = 0,
    stored: int = 0,
    **media: int,
) -> dict:
    """What :data:`ROW`'s pair has counted (``media``: its pictures, audio seconds and
    speech characters)."""
    return {
        **ROW,
        "requests": requests,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "errors": errors,
        "cached_tokens": cached,
        "web_searches": searches,
        "audio_prompt_tokens": audio,
        "stored": stored,
        **{name: media.get(name, 0) for name in ("pictures", "audio_seconds", "speech_characters")},
    }


def test_counts_add_up(store):
    store.apply(
        [
            Charge("alice", "qwen", 10, 5, False, cached_tokens=8, web_searches=2),
            Charge("alice", "qwen", 3, 0, True, web_searches=1, audio_prompt_tokens=2),
            Charge(
                "alice",
                "qwen",
                9,
                4,
                False,
                audio_prompt_tokens=3,
                stored=1,
                pictures=2,
                audio_seconds=11,
                speech_characters=40,
            ),  # fmt: skip
        ]
    )
    store.apply([Charge("bob", "qwen", 1, 1, False)])
    assert store.totals() == [
        counted(
            3,
            22,
            9,
            1,
            cached=8,
            searches=3,
            audio=5,
            stored=1,
            pictures=2,
            audio_seconds=11,
            speech_characters=40,
        ),  # fmt: skip
        {**counted(1, 1, 1, 0), "key": "bob"},
    ]


def test_a_service_tiers_usage_is_a_row_of_its_own(store):
    """A tier priced apart reprices its answers apart: its row says which it is."""
    store.apply(
        [
            Charge("alice", "qwen", 10, 5, False, tier="priority"),
            Charge("alice", "qwen", 3, 1, False),
            Charge("alice", "qwen", 2, 2, False, tier="priority", stored=1),
            Charge("alice", "qwen", 1, 1, False, tier="flex"),
        ]
    )
    assert store.totals() == [
        counted(1, 3, 1, 0),
        {**counted(1, 1, 1, 0), "service_tier": "flex"},
        {**counted(2, 12, 7, 0, stored=1), "service_tier": "priority"},
    ]


def test_the_pictures_of_a_size_priced_apart_are_a_row_of_their_own(store):
    """A size the price names reprices its pictures apart, beside a tier's: its row says
    which it is, in both stores, and a journal's line keeps it."""
    sized = Charge("alice", "sd", 0, 0, False, size="1024x1024", pictures=2)
    store.apply(
        [
            Charge("alice", "sd", 0, 0, False, size="512x512", pictures=1),
            sized,
            Charge.from_line(Charge("alice", "sd", 0, 0, False, size="1024x1024",
                                    pictures=1).line()),
            Charge("alice", "sd", 0, 0, False, tier="flex", size="512x512", pictures=4),
        ]
    )  # fmt: skip
    assert store.totals() == [
        {**counted(2, 0, 0, 0, pictures=3), "model": "sd", "size": "1024x1024"},
        {**counted(1, 0, 0, 0, pictures=1), "model": "sd", "size": "512x512"},
        {**counted(1, 0, 0, 0, pictures=4), "model": "sd", "service_tier": "flex",
         "size": "512x512"},
    ]  # fmt: skip


def test_a_charge_written_again_counts_once(store):
    charge = Charge("alice", "qwen", 10, 5, False, ("day:2026-11-26", "month:2026-11"), 15)
    store.apply([charge])
    store.apply([charge, Charge.from_line(charge.line())])  # replayed, and from a journal
    store.apply([Charge("alice", "qwen", 1, 1, False, ("day:2026-11-26",), 2)])
    assert store.totals() == [counted(2, 11, 6, 0)]
    assert store.spent("alice", ["day:2026-11-26", "month:2026-11", "day:2026-11-27"]) == [
        17,
        15,
        0,
    ]


def test_one_charge_adds_its_tokens_and_its_micro_dollars_each_to_its_own_periods(store):
    money = ("usd_day:2026-11-26", "usd_month:2026-11")
    charge = Charge("alice", "qwen", 10, 5, False, ("day:2026-11-26",), 15, 4, money, 2_500)
    store.apply([charge, Charge.from_line(charge.line())])
    store.apply([Charge("alice", "qwen", 1, 1, False, (), 0, 0, money[:1], 7)])
    assert store.spent("alice", ["day:2026-11-26", *money]) == [15, 2_507, 2_500]
    assert store.totals() == [counted(2, 11, 6, 0, cached=4)]


def test_a_charge_journaled_before_money_and_cached_tokens_were_counted_reads_back():
    written = {"key": "alice", "model": "qwen", "prompt_tokens": 3, "completion_tokens": 1,
               "error": False, "periods": ["day:2026-11-26"], "tokens": 4, "id": "a1"}  # fmt: skip
    charge = Charge.from_line(json.dumps(written).encode())
    assert (charge.usd_periods, charge.micro_usd, charge.cached_tokens) == ((), 0, 0)
    assert charge.budgets() == [("day:2026-11-26", 4)]


def test_a_usage_file_made_before_cached_tokens_were_counted_gains_them(tmp_path):
    path = tmp_path / "usage.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE usage (key TEXT NOT NULL, model TEXT NOT NULL, "
            "requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, "
            "completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, "
            "PRIMARY KEY (key, model))"
        )
        db.execute("INSERT INTO usage VALUES ('alice', 'qwen', 1, 10, 5, 0)")
    db.close()
    SqliteUsage(str(path)).apply([Charge("alice", "qwen", 4, 1, False, cached_tokens=3)])
    assert SqliteUsage(str(path)).totals() == [counted(2, 14, 6, 0, cached=3)]


def test_counts_survive_a_restart(tmp_path):
    path = str(tmp_path / "usage.sqlite3")
    SqliteUsage(path).apply([Charge("alice", "qwen", 10, 5, False)])
    assert SqliteUsage(path).totals() == [counted(1, 10, 5, 0)]


def test_ids_are_made_in_time_order_and_unique():
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids) and all(len(each) == 32 for each in ids)
    times = [each[:16] for each in ids]  # the nanosecond each was made: never one before
    assert times == sorted(times)


@pytest.fixture
def clock(monkeypatch):
    """The usage store's clock, in seconds, set by the test; pruned every third charge."""
    now = [1_000_000.0]
    monkeypatch.setattr(usage, "time", SimpleNamespace(time=lambda: now[0], time_ns=time.time_ns))
    monkeypatch.setattr(usage, "PRUNE_EVERY", 3)
    return now


def kept_ids(store: SqliteUsage) -> list:
    return [id for (id,) in store.file.rows("SELECT id FROM charged ORDER BY rowid")]


@pytest.mark.parametrize(
    ("applied_at", "kept"),
    [
        ((0, 0, KEEP_IDS + 10), ["c"]),  # the two old ids go, as the third charge prunes
        ((0, 20, KEEP_IDS + 10), ["b", "c"]),  # one applied within KEEP_IDS of the prune stays
        ((20, 0, KEEP_IDS + 10), ["a", "b", "c"]),  # after a newer one (a clock behind): later
        ((KEEP_IDS + 10, 0, KEEP_IDS + 10), ["a", "b", "c"]),
    ],
)
def test_ids_older_than_kept_are_pruned_oldest_first(tmp_path, clock, applied_at, kept):
    store = SqliteUsage(str(tmp_path / "usage.sqlite3"))
    for id, at in zip("abc", applied_at, strict=True):
        clock[0] = 1_000_000.0 + at
        store.apply([Charge("alice", "qwen", 1, 1, False, id=id)])
    assert kept_ids(store) == kept


def test_a_pruned_charge_written_again_counts_again_and_a_kept_one_once(tmp_path, clock):
    store = SqliteUsage(str(tmp_path / "usage.sqlite3"))
    old, recent = Charge("alice", "qwen", 1, 1, False), Charge("alice", "qwen", 2, 2, False)
    store.apply([old])
    clock[0] += KEEP_IDS + 1
    store.apply([recent, Charge("alice", "qwen", 4, 4, False)])  # the third charge: pruned
    store.apply([old, recent])
    assert store.totals() == [counted(4, 8, 8, 0)]


WRITER = """
import sys
from proxy.access.usage import Charge, SqliteUsage
store = SqliteUsage(sys.argv[1])
for _ in range(200):
    store.apply([Charge("alice", "qwen", 2, 1, False)])
"""


def test_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "usage.sqlite3")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path]) for _ in range(3)]
    assert [writer.wait(60) for writer in writers] == [0, 0, 0]
    (row,) = SqliteUsage(path).totals()
    assert row == counted(600, 1200, 600, 0)


def test_redis_totals_from_two_processes(redis_client, redis_url):
    import redis

    with redis.Redis.from_url(redis_url) as second_process:
        for client in (redis_client, second_process):
            RedisUsage(client).apply(
                [Charge("alice", "qwen", 4, 2, False), Charge("alice", "qwen", 1, 0, True)]
            )
    assert RedisUsage(redis_client).totals() == [counted(4, 10, 4, 2)]
