"""The files a key keeps: counted and bounded (in number, in bytes, by the disk's reserve) by
their owner's marks, uploads at once never keeping more; a file's lines read one at a time,
each held once however long: a line past the bound comes cut to one byte more than it (its
reader sees it is too long), the rest read past."""

from __future__ import annotations

import errno
import io
import os
import shutil
import threading

import pytest

from proxy.batches.files import FileStore
from proxy.batches.folder import CHUNK, read_line, write_whole
from proxy.batches.store import BatchStore
from proxy.core.errors import InvalidRequestError, NotFoundError, StoreUnavailableError

LONG = b"y" * (3 * CHUNK + 5) + b"\n"


def read(data: bytes, longest: int) -> list:
    source, found = io.BytesIO(data), []
    while line := read_line(source, longest):
        found.append(bytes(line))
    return found


@pytest.mark.parametrize(
    ("data", "longest", "lines"),
    [
        (b"a\nbb\n\nc", 10, [b"a\n", b"bb\n", b"\n", b"c"]),
        (b"x" * 20 + b"\nok\n", 5, [b"x" * 6, b"ok\n"]),
        (LONG + b"z\n", 2 * CHUNK, [b"y" * (2 * CHUNK + 1), b"z\n"]),
        (LONG + b"z\n", 4 * CHUNK, [LONG, b"z\n"]),
        (b"w" * (2 * CHUNK), 4 * CHUNK, [b"w" * (2 * CHUNK)]),
    ],
    ids=["short", "cut", "cut-past-chunks", "long-within-bound", "last-without-break"],
)
def test_each_line_whole_or_cut_one_past_its_bound(data, longest, lines):
    assert read(data, longest) == lines


def store(tmp_path, **bounds) -> FileStore:
    return FileStore(str(tmp_path), max_bytes=bounds.pop("max_bytes", 1000), max_lines=100,
                     per_key=bounds.pop("per_key", 10), **bounds)  # fmt: skip


def test_a_keys_files_are_counted_by_their_marks_and_bounded_in_bytes(tmp_path):
    files = store(tmp_path, bytes_per_key=10)
    kept = files.upload("alice", io.BytesIO(b"123456\n"), "a.jsonl", "batch")
    assert files.holding("alice") == (1, 7) and files.holding("bob") == (0, 0)
    with pytest.raises(InvalidRequestError, match=r"--files-bytes-per-key") as refused:
        files.upload("alice", io.BytesIO(b"1234\n"), "b.jsonl", "batch")
    assert refused.value.param == "file"
    assert files.upload("bob", io.BytesIO(b"1234\n"), "b.jsonl", "batch")  # his own bytes
    files.delete("alice", kept.id)
    assert files.holding("alice") == (0, 0)
    assert files.upload("alice", io.BytesIO(b"1234\n"), "b.jsonl", "batch")
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == sorted(
        f"{each.id}.{part}" for each in files.listed(None) for part in ("data", "json")
    )  # nothing of a refused upload is left


def test_uploads_at_once_never_keep_more_than_the_key_may(tmp_path):
    files = store(tmp_path, per_key=2)
    outcomes = []

    def upload(number: int) -> None:
        try:
            files.upload("alice", io.BytesIO(b"%d\n" % number), "f.jsonl", "batch")
            outcomes.append("kept")
        except InvalidRequestError as refused:
            assert "--files-per-key" in refused.message
            outcomes.append("refused")

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["kept"] * 2 + ["refused"] * 8
    assert len(files.listed("alice")) == 2 and files.holding("alice")[0] == 2
    assert len([path for path in tmp_path.glob("file-*.data")]) == 2


def test_the_disks_reserve_is_kept_before_a_byte_is_written(tmp_path):
    files = store(tmp_path, reserve=2**62)  # more than any disk has
    with pytest.raises(StoreUnavailableError, match=r"--files-reserve") as refused:
        files.upload("alice", io.BytesIO(b"{}\n"), "a.jsonl", "batch")
    assert refused.value.status == 503 and not list(tmp_path.glob("file-*"))
    batches = BatchStore(str(tmp_path), reserve=2**62)
    record = batches.create("alice", "/v1/chat/completions", "file-" + "0" * 24, "24h", None)
    with pytest.raises(OSError, match="reserve"):  # an answer waits, as on a full disk
        batches.answer(record.id, {"custom_id": "a"}, True)
    assert batches.answered(record.id) == {}


@pytest.mark.parametrize("name", ["a\r\nb.jsonl", "a\x00.jsonl", "tab\t.jsonl"])
def test_a_file_name_holding_control_characters_is_refused(tmp_path, name):
    with pytest.raises(InvalidRequestError, match="control characters"):
        store(tmp_path).upload("alice", io.BytesIO(b"{}\n"), name, "batch")


def test_a_record_that_cannot_be_written_leaves_no_part_behind(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_whole(tmp_path / "record.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_kept_before_marks_is_marked_once_as_it_opens(tmp_path):
    files = store(tmp_path)
    kept = files.upload("alice", io.BytesIO(b"{}\n"), "a.jsonl", "batch")
    shutil.rmtree(tmp_path / "owners")  # as an older proxy left the folder
    again = store(tmp_path)
    assert [each.id for each in again.listed("alice")] == [kept.id]
    assert again.holding("alice") == (1, 3)


def test_pictures_kept_for_their_links_are_the_keys_files_all_or_none(tmp_path):
    now = [1000.0]
    files = store(tmp_path, per_key=3, bytes_per_key=10, retention=86400, clock=lambda: now[0])
    ids = files.keep_pictures("alice", [("picture-0.png", b"\x89PNG1"), ("picture-1.png", b"2")],
                              3600)  # fmt: skip
    kept = [files.get("alice", id) for id in ids]
    assert [(f.purpose, f.bytes, f.filename, f.expires_at) for f in kept] == [
        ("image_output", 5, "picture-0.png", 4600), ("image_output", 1, "picture-1.png", 4600)
    ]  # fmt: skip
    assert files.content("alice", ids[0]).read_bytes() == b"\x89PNG1"
    with pytest.raises(NotFoundError):
        files.get("bob", ids[0])
    files.picture_room("alice", 1)
    with pytest.raises(InvalidRequestError, match="--files-per-key"):
        files.picture_room("alice", 2)  # before they are drawn
    with pytest.raises(InvalidRequestError, match="--files-bytes-per-key"):
        files.keep_pictures("alice", [("picture-0.png", b"123456")], 3600)
    assert files.holding("alice") == (2, 6)  # none of the refused ones
    now[0] = 4600.0
    with pytest.raises(NotFoundError):
        files.get("alice", ids[0])  # its hour is over
