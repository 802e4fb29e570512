"""Reading answers off a connection: heads, framings, and what is not HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator

import pytest

from proxy.backends.wire.connections import BrokenAnswer, Connection, ConnectionPool


@contextlib.contextmanager
def answered(raw: bytes) -> Iterator[Connection]:
    """A connection whose server has sent ``raw`` and then stopped sending."""
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.shutdown(socket.SHUT_WR)
    connection = Connection(ours)
    try:
        yield connection
    finally:
        connection.close()
        theirs.close()


@pytest.mark.parametrize(
    "raw, status, body, keep_alive",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, b"hi", True),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length:  2 \r\nConnection: close\r\n\r\nhi",
            200,
            b"hi",
            False,
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", 200, b"until close", False),
        (
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
            200,
            b"x",
            True,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 404 File Not Found\r\nContent-Length: 3\r\n\r\nnop",
            404,
            b"nop",
            True,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
            200,
            b"hi",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        (
            b"HTTP/1.1 200 OK\r\n\r\nno length, so until close",
            200,
            b"no length, so until close",
            False,
        ),
    ],
    ids=[
        "length",
        "close",
        "http1.0",
        "http1.0-keep-alive",
        "interim-100",
        "chunked",
        "no-content",
        "no-length",
    ],
)
def test_heads_and_bodies(raw, status, body, keep_alive):
    with answered(raw) as connection:
        head = connection.exchange(b"GET / HTTP/1.1\r\n\r\n")
        assert (head.status, connection.body(head), head.keep_alive) == (status, body, keep_alive)


def test_pieces_stop_at_the_length_without_waiting_for_more():
    ours, theirs = socket.socketpair()
    theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")  # and stays open
    connection = Connection(ours)
    assert b"".join(connection.pieces(connection.exchange(b"x"))) == b"hello"
    connection.close()
    theirs.close()


def test_a_stream_that_stalls_is_a_timeout_even_reading_the_socket_itself():
    ours, theirs = socket.socketpair()
    ours.settimeout(0.3)
    theirs.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
    connection = Connection(ours)
    pieces = connection.pieces(connection.exchange(b"x"))
    assert next(pieces) == b"hi"
    theirs.sendall(b"3\r\nyou\r\n")  # then nothing more
    assert next(pieces) == b"you"
    with pytest.raises(socket.timeout):
        next(pieces)
    connection.close()
    theirs.close()


@pytest.mark.parametrize(
    "raw, error",
    [
        (b"", ConnectionResetError),
        (b"SSH-2.0-OpenSSH\r\n\r\n", BrokenAnswer),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", BrokenAnswer),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", BrokenAnswer),
        (b"HTTP/1.1 200 OK\r\nX: y\r\n", BrokenAnswer),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", BrokenAnswer),
    ],
    ids=["closed", "not-http", "short-body", "bad-length", "cut-head", "endless-head"],
)
def test_what_is_not_a_whole_answer_is_said(raw, error):
    with answered(raw) as connection, pytest.raises(error):
        connection.body(connection.exchange(b"GET / HTTP/1.1\r\n\r\n"))


EVENTS = [b'data: {"content":"a"}', b'data: {"content":"b"}', b'data: {"stop":true}']
STREAM = b"\n\n".join(EVENTS) + b"\n\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\n\n\r\n" % (len(e) + 2, e) for e in EVENTS)
        + b"0\r\n\r\nnever read",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%snever read" % (len(STREAM), STREAM),
        b"HTTP/1.1 200 OK\r\n\r\n" + STREAM,
    ],
    ids=["chunked", "length", "until-close"],
)
def test_lines_come_whole_from_every_framing(raw):
    with answered(raw) as connection:
        head = connection.exchange(b"GET / HTTP/1.1\r\n\r\n")
        batches = list(connection.lines(head, lambda exc: exc))
    assert [line for batch in batches for line in batch if line] == EVENTS


def test_the_wait_for_each_read_is_counted():
    class Watch:
        waited = 0.0

    ours, theirs = socket.socketpair()
    theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(STREAM))
    connection = Connection(ours)
    watch = Watch()
    lines = connection.lines(connection.exchange(b"x"), lambda exc: exc, watch)
    threading.Timer(0.05, theirs.sendall, [STREAM]).start()
    assert [line for batch in lines for line in batch if line] == EVENTS
    assert watch.waited > 0
    connection.close()
    theirs.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
    ids=["chunked", "length"],
)
def test_lines_cut_short_fail_as_the_caller_says(raw):
    class Failed(Exception):
        pass

    with answered(raw) as connection, pytest.raises(Failed):
        head = connection.exchange(b"GET / HTTP/1.1\r\n\r\n")
        list(connection.lines(head, lambda exc: Failed(type(exc).__name__)))


def test_an_empty_body_leaves_the_next_answer_unread():
    raw = b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    with answered(raw) as connection:
        assert connection.body(connection.exchange(b"x")) == b""
        head = connection.exchange(b"y")
        assert (head.status, connection.body(head)) == (200, b"hi")


def test_a_connection_given_back_to_a_closed_pool_is_closed_not_kept():
    pool = ConnectionPool("http://127.0.0.1:9", size=4, connect_timeout=1, read_timeout=1)
    ours, theirs = socket.socketpair()
    kept, late = Connection(ours), Connection(theirs)
    pool.give_back(kept)
    pool.close()
    pool.give_back(late)  # a stream that ended after its backend closed
    assert kept.sock.fileno() == -1
    assert late.sock.fileno() == -1
