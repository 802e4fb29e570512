"""The inspector's store of exchanges: what is kept of a body, the bounds, the way there."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading

import pytest

from proxy.access.keyring import KeySpec
from proxy.config.catalog import ModelSpec
from proxy.inspector.capture import MAX_PART, Capture, gather_side, kept, scrubbed
from proxy.inspector.redis_exchanges import BRIEFS, BYTES, IDS, NEXT, RECORDS, SIZES, RedisExchanges
from proxy.inspector.sqlite_exchanges import SqliteExchanges
from proxy.ops.modelside import PROXY, SERVER, ModelSide

PNG = bytes(range(256)) * 4
ENCODED = base64.b64encode(PNG).decode()
SUMMARY = f"{len(PNG)} bytes, sha256 {hashlib.sha256(PNG).hexdigest()}]"


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"url": f"data:image/png;base64,{ENCODED}"}, {"url": f"[image/png: {SUMMARY}"}),
        ({"images": [ENCODED]}, {"images": [f"[base64: {SUMMARY}"]}),
        ({"source": {"type": "base64", "data": ENCODED}},
         {"source": {"type": "base64", "data": f"[base64: {SUMMARY}"}}),
        ({"content": "word " * 200}, {"content": "word " * 200}),  # text stays text
        ({"content": "short"}, {"content": "short"}),
        (["a", 1, None, True], ["a", 1, None, True]),
    ],
    ids=["data uri", "ollama's images", "anthropic's source", "long text", "short", "scalars"],
)  # fmt: skip
def test_base64_payloads_are_kept_as_their_type_size_and_hash(value, expected):
    assert scrubbed(value) == expected


def test_a_body_is_kept_as_json_or_as_text_and_cut_past_a_megabyte():
    assert kept(b'{"a": 1}') == ({"a": 1}, False)
    assert kept(b"data: {}\n\n") == ("data: {}\n\n", False)
    text, cut = kept(b"x" * (MAX_PART + 10))
    assert cut and len(text) == MAX_PART


def record(n: int, key: str = "alice", at: float = 1000.0, size: int = 0, **more) -> dict:
    return {"at": at, "key": key, "model": "qwen", "api": "openai", "status": 200, "n": n,
            "pad": "x" * size, **more}  # fmt: skip


def store(tmp_path, **bounds) -> SqliteExchanges:
    return SqliteExchanges(str(tmp_path / "exchanges.sqlite3"), clock=lambda: 1000.0, **bounds)


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path):
    """Stores of either kind, with their bounds, on the same clock."""
    if request.param == "sqlite":
        return lambda **bounds: store(tmp_path, **bounds)
    client = request.getfixturevalue("redis_client")
    return lambda **bounds: RedisExchanges(client, clock=lambda: 1000.0, **bounds)


def test_the_newest_are_listed_first_and_filtered(make_store):
    kept_here = make_store()
    kept_here.add([record(1), record(2, key="bob"), record(3, status=500)])
    assert [brief["id"] for brief in kept_here.listed()] == [3, 2, 1]
    assert [brief["id"] for brief in kept_here.listed(key="bob")] == [2]
    assert [brief["id"] for brief in kept_here.listed(status=500)] == [3]
    assert [brief["id"] for brief in kept_here.listed(limit=1)] == [3]
    assert kept_here.get(2)["key"] == "bob" and kept_here.get(2)["n"] == 2
    assert kept_here.get(99) is None


@pytest.mark.parametrize(
    "bounds, records, left",
    [
        ({"max_count": 3}, [record(n) for n in range(5)], [4, 3, 2]),
        ({"max_bytes": 2500}, [record(n, size=1000) for n in range(5)], [4, 3]),
        ({"retention": 100}, [record(0, at=800.0), record(1, at=950.0)], [1]),
    ],
    ids=["count", "bytes", "age"],
)
def test_past_a_bound_the_oldest_make_room(make_store, bounds, records, left):
    kept_here = make_store(**bounds)
    dropped = kept_here.add(records)
    assert [kept_here.get(brief["id"])["n"] for brief in kept_here.listed()] == left
    assert dropped == len(records) - len(left)
    count, size = kept_here.totals()
    assert count == len(left) and size <= bounds.get("max_bytes", size)


def test_bytes_on_disk_stay_bounded_as_exchanges_keep_coming(tmp_path):
    """A thousand exchanges of 50 KB into a store of 8 MiB: it holds the newest that fit, and
    its file reuses the room the oldest leave."""
    bound = 8 * 1024 * 1024
    kept_here = store(tmp_path, max_bytes=bound)
    for batch in range(20):
        kept_here.add([record(batch * 50 + n, size=50_000) for n in range(50)])
    count, size = kept_here.totals()
    assert size <= bound and count == bound // (size // count)  # as many as fit, no more
    assert kept_here.get(kept_here.listed(limit=1)[0]["id"])["n"] == 999
    assert (tmp_path / "exchanges.sqlite3").stat().st_size < 2 * bound


def test_redis_memory_stays_bounded_as_exchanges_keep_coming(redis_client):
    bound = 8 * 1024 * 1024
    kept_here = RedisExchanges(redis_client, clock=lambda: 1000.0, max_bytes=bound)
    empty = redis_client.info("memory")["used_memory"]
    for batch in range(20):
        kept_here.add([record(batch * 50 + n, size=50_000) for n in range(50)])
    count, size = kept_here.totals()
    assert size <= bound and count == bound // (size // count)
    assert kept_here.get(kept_here.listed(limit=1)[0]["id"])["n"] == 999
    assert redis_client.info("memory")["used_memory"] - empty < 2 * bound


class Served:
    """A catalog's models, as capture reads them."""

    def __init__(self, *specs) -> None:
        self.models = specs


def test_capture_is_for_everyone_or_for_the_keys_and_models_that_ask(tmp_path):
    asks = KeySpec("alice", b"sk-a", capture=True)
    plain = KeySpec("bob", b"sk-b")
    everyone = Capture(store(tmp_path), everyone=True)
    assert everyone.armed() and everyone.wanted(plain, "m")
    off = Capture(store(tmp_path), everyone=False, catalog=lambda: Served(ModelSpec("m")))
    assert not off.armed() and not off.wanted(plain, "m")
    keyed = Capture(store(tmp_path), everyone=False, keyed=True)
    assert keyed.armed()
    assert keyed.wanted(asks, "m") and not keyed.wanted(plain, "m") and not keyed.wanted(None, "m")
    catalog = Served(ModelSpec("kept", capture=True), ModelSpec("other"))
    by_model = Capture(store(tmp_path), everyone=False, catalog=lambda: catalog)
    assert by_model.armed()
    assert by_model.wanted(plain, "kept") and by_model.wanted(None, "kept")
    assert not by_model.wanted(plain, "other")


def test_the_model_side_is_gathered_by_the_writer_scrubbed_and_cut():
    seen = ModelSide()
    seen.route, seen.body = "/completion", {"prompt": "hi", "image_data": [{"data": ENCODED}]}
    seen.prompt, seen.prompt_by = "x" * (MAX_PART + 5), PROXY
    seen.raw = ["<tool_call>", '{"name": "f"}']
    gathered = gather_side({**record(1), "side": seen})
    assert gathered["upstream_route"] == "/completion"
    assert gathered["upstream_body"]["image_data"] == [{"data": f"[base64: {SUMMARY}"}]
    assert len(gathered["prompt"]) == MAX_PART and gathered["model_side_cut"]
    assert gathered["raw"] == '<tool_call>{"name": "f"}' and "side" not in gathered


def test_a_server_rendered_prompt_is_asked_for_by_the_writer_and_its_failure_said():
    asked = []
    seen = ModelSide()
    seen.render, seen.prompt_by = (lambda: asked.append(1) or "<|im_start|>user"), SERVER
    assert asked == []  # nothing asked on the request's way
    assert gather_side({**record(1), "side": seen})["prompt"] == "<|im_start|>user" and asked

    def down():
        raise ConnectionError("gone")

    broken = ModelSide()
    broken.render, broken.prompt_by = down, SERVER
    facts = gather_side({**record(1), "side": broken})
    assert facts["prompt"] is None and "ConnectionError" in facts["prompt_by"]


@pytest.mark.parametrize(
    "attempts, prompt, by",
    [
        ([("proxy", "turn 1"), ("proxy", "turn 1, its tool's result, turn 2")],
         "turn 1, its tool's result, turn 2", PROXY),
        ([("proxy", "the first server's"), ("server", "the fallback's")], "the fallback's", SERVER),
        ([("server", "the first server's"), ("proxy", "the fallback's")], "the fallback's", PROXY),
    ],
    ids=["a tool loop's last turn", "a server's rendering after the proxy's", "the other way"],
)  # fmt: skip
def test_the_prompt_kept_is_the_last_attempts_as_its_body_is(attempts, prompt, by):
    seen = ModelSide()
    for rendered_by, text in attempts:
        seen.sent("/upstream", {"prompt": text})
        if rendered_by == "proxy":
            seen.prompted(text)
        else:
            seen.rendered_by_server(lambda text=text: text)
    facts = gather_side({**record(1), "side": seen})
    assert (facts["prompt"], facts["prompt_by"]) == (prompt, by)
    assert facts["upstream_body"] == {"prompt": prompt}


def test_listing_filters_by_thread_and_time_and_finds_the_turn_before(make_store):
    kept_here = make_store()
    turns = [
        {**record(n), "at": 1000.0 + n, "key": key, "owner": key, "thread": talk, "seconds": 0.5}
        for n, (key, talk) in enumerate(
            [("a", "c1"), ("a", "c2"), ("b", "c1"), ("a", "c1"), ("a", "c2")]
        )
    ]
    kept_here.add(turns)
    ids = [brief["id"] for brief in reversed(kept_here.listed())]
    assert [b["id"] for b in kept_here.listed(thread="c1")] == [ids[3], ids[2], ids[0]]
    assert [b["id"] for b in kept_here.listed(since=1001.0, until=1003.0)] == [ids[2], ids[1]]
    assert [b["id"] for b in kept_here.listed(before=ids[1])] == [ids[0]]
    assert kept_here.listed(limit=1)[0]["seconds"] == 0.5
    fourth = kept_here.get(ids[3])
    assert kept_here.previous(fourth)["id"] == ids[0]  # its owner's, not b's turn between
    assert kept_here.previous(kept_here.get(ids[0])) is None


def test_an_exchanges_file_written_before_threads_were_named_so_opens_and_links_them(tmp_path):
    path = tmp_path / "exchanges.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(  # the table as the proxy made it then
            "CREATE TABLE exchanges (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
            "key TEXT NOT NULL, model TEXT NOT NULL, api TEXT NOT NULL, status INTEGER NOT NULL, "
            "conversation TEXT NOT NULL, bytes INTEGER NOT NULL, record TEXT NOT NULL)"
        )
        for n, talk in ((1, "c1"), (2, "c2")):
            text = json.dumps({**record(n), "conversation": talk})
            db.execute(
                "INSERT INTO exchanges (at, key, model, api, status, conversation, bytes, "
                "record) VALUES (1000.0, 'alice', 'qwen', 'openai', 200, ?, ?, ?)",
                (talk, len(text), text),
            )
    db.close()
    kept_here = store(tmp_path)
    kept_here.add([{**record(3), "thread": "c1"}])
    assert [brief["id"] for brief in kept_here.listed(thread="c1")] == [3, 1]
    assert kept_here.get(1)["thread"] == "c1" and "conversation" not in kept_here.get(1)
    assert kept_here.previous(kept_here.get(3))["id"] == 1
    assert [brief["id"] for brief in store(tmp_path).listed(thread="c2")] == [2]  # opened again


def test_exchanges_kept_in_redis_before_threads_were_named_so_are_read_as_threads(redis_client):
    for id, talk in ((1, "c1"), (2, "c2")):  # as the proxy kept them then
        old = {**record(id), "conversation": talk}
        text = json.dumps(old)
        summary = {
            "id": id,
            **{name: old[name] for name in ("at", "key", "model", "api", "status")},
        }
        redis_client.hset(RECORDS, id, text)
        redis_client.hset(BRIEFS, id, json.dumps({**summary, "conversation": talk}))
        redis_client.hset(SIZES, id, len(text))
        redis_client.incrby(BYTES, len(text))
        redis_client.zadd(IDS, {str(id): id})
    redis_client.set(NEXT, 2)
    kept_here = RedisExchanges(redis_client, clock=lambda: 1000.0)
    kept_here.add([{**record(3), "thread": "c1"}])
    assert [brief["id"] for brief in kept_here.listed(thread="c1")] == [3, 1]
    assert kept_here.get(1)["thread"] == "c1" and "conversation" not in kept_here.get(1)
    assert kept_here.previous(kept_here.get(3))["id"] == 1


def test_a_full_queue_drops_and_counts_rather_than_wait(tmp_path, monkeypatch):
    monkeypatch.setattr("proxy.inspector.capture.QUEUED", 2)
    capture = Capture(store(tmp_path), everyone=True)
    monkeypatch.setattr(capture, "_writer", object())  # no writer: the queue fills
    for n in range(5):
        capture.submit(record(n))
    assert capture.dropped == 3
    capture.flush()
    assert [json.loads(json.dumps(capture.store.get(b["id"])))["n"] for b in
            capture.store.listed()] == [1, 0]  # fmt: skip


def test_the_line_to_the_writer_is_bounded_by_bytes_too(tmp_path, monkeypatch):
    monkeypatch.setattr("proxy.inspector.capture.QUEUED_BYTES", 1000)
    capture = Capture(store(tmp_path), everyone=True)
    monkeypatch.setattr(capture, "_writer", object())  # no writer: the queue fills
    for n in range(3):
        capture.submit(record(n), size=400)
    assert capture.dropped == 1
    capture.flush()
    capture.submit(record(3), size=900)  # the queue emptied: room again
    assert capture.dropped == 1


def test_a_readers_flush_waits_for_the_record_the_writer_is_gathering(tmp_path, monkeypatch):
    capture = Capture(store(tmp_path), everyone=True)
    monkeypatch.setattr(capture, "_writer", object())  # the flushes below are the writers
    rendering, rendered = threading.Event(), threading.Event()

    def slow_render():
        rendering.set()
        rendered.wait(timeout=30)
        return "<|im_start|>user"

    seen = ModelSide()
    seen.render, seen.prompt_by = slow_render, SERVER
    capture.submit({**record(1), "side": seen})
    writer = threading.Thread(target=capture.flush)
    writer.start()
    rendering.wait(timeout=30)
    reader = threading.Thread(target=capture.flush)
    reader.start()
    reader.join(timeout=0.2)
    held = reader.is_alive()  # still waiting for the writer's record
    rendered.set()
    reader.join(timeout=30)
    writer.join(timeout=30)
    assert held and [capture.store.get(b["id"])["n"] for b in capture.store.listed()] == [1]
