"""Where a conversation's turn runs inside its replica, and what a replica the proxy runs
says of itself: the seats each kind of replica answers with, its restarts, health and card."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from proxy.core.answers import Health, ModelCard, ModelInfo
from proxy.core.errors import UNREACHABLE, QueueFullError, UpstreamUnavailableError
from proxy.core.types import GenerationRequest, Message
from proxy.fleet.replica import RESTARTS, ManagedReplica, Replica
from proxy.fleet.seats import Affinity, KeptSeats, RememberedSeats, answered_from
from tests.fakes.backend import FakeBackend

CHAT = GenerationRequest(messages=(Message("user", "hi"),))
PROMPT = GenerationRequest(prompt="once upon a time")


class FindingSlots(FakeBackend):
    def finds_slots(self) -> bool:
        return True


class Server:
    """What a replica asks of a server the proxy runs, recorded."""

    url = "http://127.0.0.1:9"

    def __init__(self, state: str = "ready", dead: bool = True, slot: int = 1) -> None:
        self.state, self.dead, self.slot = state, dead, slot
        self.calls: list = []

    def prepare(self, key, pinned, new=False):
        self.calls.append(("prepare", key, pinned, new))
        return self.slot

    def served(self, key, slot):
        self.calls.append(("served", key, slot))

    def gone(self, within):
        return self.dead

    def is_ready(self):
        return self.state == "ready"

    @contextmanager
    def using(self, measure=None):
        self.calls.append("kept running")
        yield
        self.calls.append("let go")

    def snapshot(self):
        return {
            "state": self.state,
            "url": self.url,
            **({"error": "it exited"} if self.state == "failed" else {}),
        }


def test_a_plain_replica_names_the_slot_it_saw_serve_once_at_a_time():
    seats = Replica("http://a", FakeBackend()).seats(Affinity())
    assert seats.prepare("x", PROMPT) is None  # nothing seen yet
    seats.served("x", 2)
    assert seats.prepare("x", PROMPT) == 2
    assert seats.prepare("x", PROMPT) is None  # the first turn still runs there
    seats.release(2)
    assert seats.prepare("x", PROMPT) == 2


@pytest.mark.parametrize(
    ("key", "request_", "backend"),
    [
        (None, PROMPT, FakeBackend()),  # the model places no conversation
        ("x", PROMPT.in_slot(0), FakeBackend()),  # the client chose a slot itself
        ("x", PROMPT, FindingSlots()),  # the server finds it better
    ],
    ids=["no key", "client's slot", "server finds slots"],
)
def test_a_plain_replica_names_no_slot(key, request_, backend):
    memory = Affinity()
    memory.served("x", "http://a", 2)
    seats = RememberedSeats("http://a", memory, backend)
    assert seats.prepare(key, request_) is None


def test_a_replica_the_proxy_runs_asks_its_servers_slot_keeper():
    server = Server(slot=3)
    seats = ManagedReplica(server, FakeBackend()).seats(Affinity())
    assert isinstance(seats, KeptSeats)
    assert seats.prepare("x", CHAT) == 3
    assert seats.prepare("y", PROMPT.in_slot(1)) == 3
    seats.release(3)
    seats.served("x", 3)
    assert server.calls == [
        ("prepare", "x", None, True),
        ("prepare", "y", 1, False),
        ("served", "x", 3),
    ]


@pytest.mark.parametrize(
    ("answered", "named", "served"), [(2, None, 2), (2, 1, 2), (None, 1, 1), (None, None, None)]
)
def test_the_slot_that_served_is_the_answers_else_the_one_named(answered, named, served):
    assert answered_from(answered, named) == served


UNREACHED = UpstreamUnavailableError("it went away", code=UNREACHABLE)


@pytest.mark.parametrize(
    ("exc", "dead", "restarts", "again"),
    [
        (UNREACHED, True, 0, True),
        (UNREACHED, True, RESTARTS - 1, True),
        (UNREACHED, True, RESTARTS, False),  # enough restarts
        (UNREACHED, False, 0, False),  # alive: the failure is another one
        (UpstreamUnavailableError("no room"), True, 0, False),
        (QueueFullError("the queue is full"), True, 0, False),
    ],
)
def test_a_request_goes_again_only_to_a_server_that_died_under_it(exc, dead, restarts, again):
    assert ManagedReplica(Server(dead=dead), FakeBackend()).restarts_after(exc, restarts) is again
    assert Replica("http://a", FakeBackend()).restarts_after(exc, restarts) is False


def test_a_replica_the_proxy_runs_is_kept_running_while_it_serves():
    server = Server()
    with ManagedReplica(server, FakeBackend()).serving():
        assert server.calls == ["kept running"]
    assert server.calls == ["kept running", "let go"]


class Healthy(FakeBackend):
    def probe(self) -> Health:
        return Health(True, "servercpp", {"upstream": "http://127.0.0.1:9"})


@pytest.mark.parametrize(
    ("state", "ok", "error"),
    [
        ("ready", True, None),
        ("stopped", True, None),
        ("starting", True, None),
        ("failed", False, "it exited"),
    ],
)
def test_a_stopped_server_can_serve_a_failed_one_says_why(state, ok, error):
    report = ManagedReplica(Server(state), Healthy()).probe()
    assert report.ok is ok and report.detail["managed"]["state"] == state
    assert report.detail.get("error") == error
    assert ManagedReplica(Server(state), Healthy()).starting() is (state != "ready")


class Carded(FakeBackend):
    def __init__(self, card: ModelCard) -> None:
        super().__init__()
        self.card = card

    def models(self) -> list:
        return [ModelInfo("tiny", card=self.card)]


@pytest.mark.parametrize(
    ("servers", "files", "shown"),
    [
        (ModelCard(digest="server"), ModelCard(digest="file"), "server"),
        (ModelCard(), ModelCard(digest="file"), "file"),  # the server not asked yet
        (ModelCard(), None, ""),
    ],
)
def test_the_card_is_the_servers_once_asked_else_the_files(servers, files, shown):
    assert ManagedReplica(Server(), Carded(servers), files).info().card.digest == shown
