"""One key's flood of long streams and another key's questions, timed from outside: what the
fairness e2e and ``bench.fairness`` both run."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import requests

FLOOD = 16  # streams kept in flight
SLOTS = 4  # the server's
QUESTIONS = 6  # the other key's, one at a time
WAITING = FLOOD - SLOTS  # the flood's requests in the proxy's queue at any time
TEAM = """
[[keys]]
name = "a"
key = "sk-a"

[[keys]]
name = "b"
key = "sk-b"

[[keys]]
name = "capped"
key = "sk-capped"
max_concurrent = 3

[[keys]]
name = "batch"
key = "sk-batch"
priority = 255

[[keys]]
name = "interactive"
key = "sk-interactive"
priority = 0
"""  # a team's keys: A floods, B asks; A capped below four slots; a batch and an interactive key
LONG, SHORT = 256, 8  # tokens of a flood's answers and of a question's


@dataclass(frozen=True)
class Asked:
    """One streamed chat, on the ``perf_counter`` clock: sent, first byte back, last byte."""

    sent: float
    first: float
    end: float

    @property
    def first_ms(self) -> float:
        return (self.first - self.sent) * 1000

    @property
    def total_ms(self) -> float:
        return (self.end - self.sent) * 1000


def ask(url: str, key: str, tokens: int, question: str) -> Asked:
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}],
            "max_tokens": tokens, "stream": True}  # fmt: skip
    sent = time.perf_counter()
    with requests.post(
        url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=600,
    ) as reply:
        reply.raise_for_status()
        pieces = reply.iter_content(chunk_size=None)
        next(pieces)
        first = time.perf_counter()
        for _ in pieces:
            pass
    return Asked(sent, first, time.perf_counter())


def questions(url: str, key: str, count: int) -> list:
    """``count`` short questions, one at a time."""
    return [ask(url, key, SHORT, f"Question {n}?") for n in range(count)]


class Flood:
    """``key``'s :data:`FLOOD` streams of ``tokens`` tokens, in flight while the ``with``
    block runs (after ``filling`` seconds for every slot and the queue to fill)."""

    def __init__(self, url: str, key: str, filling: float = 3.0, tokens: int = LONG) -> None:
        self.url, self.key, self.filling, self.tokens = url, key, filling, tokens
        self.answers: list = []
        self.failures: list = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(n,)) for n in range(FLOOD)]

    def _loop(self, n: int) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(ask(self.url, self.key, self.tokens, f"Tell story {n}."))
            except Exception as exc:  # counted: a flood that fails proves nothing
                self.failures.append(exc)

    def __enter__(self) -> "Flood":
        for thread in self.threads:
            thread.start()
        time.sleep(self.filling)
        self.answers.clear()
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.began
        self.done = len(self.answers)
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def overtook(self, question: Asked) -> int:
        """The flood's answers that started while ``question`` waited: their first byte
        came after it was sent and before its own."""
        return sum(question.sent < answer.first < question.first for answer in self.answers)

    def overtaken(self, question: Asked) -> int:
        """The flood's answers ``question`` went ahead of: asked before it, started after."""
        return sum(
            answer.sent < question.sent and answer.first > question.first for answer in self.answers
        )


def under_flood(url: str, flooding: str, asking: str) -> dict:
    """``asking``'s questions under ``flooding``'s flood: for each, the flood's answers
    that started while it waited (``behind``) and that it went ahead of (``ahead``)."""
    with Flood(url, flooding) as flood:
        asked = questions(url, asking, QUESTIONS)
    assert not flood.failures and flood.answers
    counts = {
        "behind": statistics.median(flood.overtook(question) for question in asked),
        "ahead": statistics.median(flood.overtaken(question) for question in asked),
    }
    print(flooding, asking, counts, "first bytes (ms):", [round(q.first_ms) for q in asked])
    return counts
