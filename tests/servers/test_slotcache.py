"""Saved KV caches: what each was saved from, which fit a server, and the disk budget."""

from __future__ import annotations

import json
import os
import time

import pytest

from proxy.servers.slotcache import SavedSlots, fingerprint, target

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" * 10)
    return str(path)


def saved(files: SavedSlots, key: str, size: int = 100) -> None:
    (files.folder / files.name(key)).write_bytes(b"x" * size)  # as the server writes it
    files.saved(key, tokens=size)


def test_a_cache_fits_only_the_server_it_was_saved_from(tmp_path, model):
    args = ["-c", "8192", "-np", "2", "-ctk", "q8_0", "--threads", "4"]
    files = SavedSlots(tmp_path / "slots" / "qwen", fingerprint(model, args, "llama-server"), 10**6)
    saved(files, KEY)
    assert files.restorable(KEY)
    for other in (
        fingerprint(model, ["-c", "4096", "-np", "2", "-ctk", "q8_0"], "llama-server"),
        fingerprint(model, args, "bundled llama.cpp (xllamacpp 2026.10.11549)"),
        fingerprint(model + ".other", args, "llama-server"),
    ):
        assert not SavedSlots(files.folder, other, 10**6).restorable(KEY)
    assert fingerprint(model, [*args, "--threads", "8"], "llama-server") == files.fingerprint
    os.utime(model, (time.time() + 100, time.time() + 100))  # the model file changed
    assert not SavedSlots(files.folder, fingerprint(model, args, "llama-server"), 10**6).restorable(
        KEY
    )


def test_only_keys_name_files(tmp_path, model):
    files = SavedSlots(tmp_path / "slots" / "m", fingerprint(model, [], "e"), 10**6)
    for name in ("../etc/passwd", "ABC", ""):
        assert not files.restorable(name)


def test_the_least_recently_used_go_first_over_the_budget(tmp_path, model):
    first = SavedSlots(tmp_path / "slots" / "a", fingerprint(model, [], "e"), 250)
    second = SavedSlots(tmp_path / "slots" / "b", fingerprint(model, [], "e"), 250)
    keys = [f"{n:032x}" for n in range(3)]
    saved(first, keys[0])
    past = time.time() - 100
    os.utime(first.folder / first.name(keys[0]), (past, past))
    saved(second, keys[1])
    first.used(keys[0])  # used again: now the most recent
    saved(first, keys[2])  # 300 bytes over every model's folder: one must go
    assert first.restorable(keys[0]) and first.restorable(keys[2])
    assert not second.restorable(keys[1])
    assert not (second.folder / f"{keys[1]}.json").exists()


def test_a_cache_that_would_not_restore_is_forgotten(tmp_path, model):
    files = SavedSlots(tmp_path / "slots" / "m", fingerprint(model, [], "e"), 10**6)
    saved(files, KEY)
    files.forget(KEY)
    assert not files.restorable(KEY) and list(files.folder.iterdir()) == []


def test_what_each_file_was_saved_from_is_beside_it(tmp_path, model):
    files = SavedSlots(tmp_path / "slots" / "m", fingerprint(model, ["-c", "512"], "e"), 10**6)
    saved(files, KEY, size=40)
    beside = json.loads((files.folder / f"{KEY}.json").read_text())
    assert beside["from"]["flags"] == {"--ctx-size": "512"} and beside["tokens"] == 40


IDLE = [
    {"id": 0, "is_processing": False},
    {"id": 1, "is_processing": True},
    {"id": 2, "is_processing": False},
    {"id": 3, "is_processing": False},
]


@pytest.mark.parametrize(
    ("served_at", "slots", "pinned", "expected"),
    [
        pytest.param({}, IDLE, 3, 3, id="the-pinned-slot"),
        pytest.param({0: 5.0}, IDLE, None, 2, id="an-idle-slot-holding-nothing-known"),
        pytest.param(
            {0: 5.0, 2: 1.0, 3: 9.0}, IDLE, None, 2, id="else-the-idle-one-used-longest-ago"
        ),
        pytest.param({}, [{"id": 0, "is_processing": True}], None, None, id="none-idle"),
        pytest.param({}, [], -1, None, id="no-slots-and-no-pin"),
    ],
)
def test_the_slot_a_cache_is_restored_into(served_at, slots, pinned, expected):
    assert target(served_at, slots, pinned) == expected
