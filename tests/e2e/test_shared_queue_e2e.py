"""One queue for every process that serves a server: gunicorn's workers share the
supervisor's, proxies sharing a real Redis behind the scale-out recipe's real nginx share
Redis's.

What one process proves of turns (tests/e2e/test_fairness_e2e.py) holds across them: another
key's question takes the next free slot, a key of a higher priority goes first, and a key's
cap counts its slots in every process (counted from llama-server's own ``/slots``). A worker
or a proxy killed while it holds slots gives them back (at once, or within the lease), and
the other's streams run on. Old servers, which refuse what they have no slot for, are never
sent more than they hold once the queue has learned their size.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
import requests

from proxy.queue.redisshared import LEASE
from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess, free_port

from .flood import SLOTS, TEAM, WAITING, Flood, under_flood
from .llama_server import LlamaServer
from .marks import CURRENT, OLD, only
from .scaleout import PROXY_ADDRESSES, Nginx, readme_blocks, substitute, system_program

pytestmark = pytest.mark.e2e

SERVINGS = ("two-workers", "four-workers", "two-proxies")
LONGEST = 4096  # tokens of a slot's context: streams that hold their slots for seconds
LEARNING = 5  # bursts an old server is sent before its size must be known
PROCESSES = "what the queue shares across processes is the proxy's, whatever the server"


@contextmanager
def serving(how: str, upstream: str, folder: Path, redis_url: str, args=()):
    """The proxy ``how`` serves: gunicorn with two or four workers, or two waitress proxies
    sharing Redis behind nginx; its URL and its processes."""
    keys = folder / "keys.toml"
    keys.write_text(TEAM)
    common = ["--keys", str(keys), "--threads", "64", *args]
    with ExitStack() as stack:
        if how != "two-proxies":
            workers = "2" if how == "two-workers" else "4"
            proxy = ProxyProcess(
                upstream,
                folder / f"proxy-{how}.log",
                how="gunicorn",
                args=[*common, "--workers", workers],
            )
            yield proxy.url, [stack.enter_context(proxy)]
            return
        redis.Redis.from_url(redis_url).flushdb()
        proxies = [
            stack.enter_context(
                ProxyProcess(
                    upstream, folder / f"proxy-{n}.log", args=[*common, "--redis-url", redis_url]
                )
            )
            for n in range(2)
        ]
        port = free_port()
        site = substitute(
            readme_blocks()["nginx"],
            {
                "listen 80;": f"listen 127.0.0.1:{port};",
                **{
                    address: f"127.0.0.1:{proxy.port}"
                    for address, proxy in zip(PROXY_ADDRESSES, proxies, strict=True)
                },
            },
            "nginx config",
        )
        (folder / "nginx").mkdir()
        nginx = Nginx(system_program("nginx", "nginx"), site, folder / "nginx", port)
        stack.enter_context(nginx)
        yield nginx.url, proxies


@pytest.fixture(scope="module")
def server(kind, model, logs):
    with LlamaServer(
        model,
        logs / "shared-queue-server.log",
        parallel=SLOTS,
        ctx_size=SLOTS * LONGEST,
        extra_args=["--ignore-eos"],
    ) as server:
        yield server


@pytest.fixture(scope="module", params=SERVINGS)
def served(request, server, redis_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    with serving(request.param, server.url, folder, redis_url) as (url, proxies):
        yield url, proxies


@only(CURRENT, why=PROCESSES)
def test_another_keys_question_takes_the_next_free_slot_of_every_process(served):
    url, _ = served
    counts = under_flood(url, "sk-a", "sk-b")
    assert counts["behind"] < SLOTS and counts["ahead"] >= WAITING - SLOTS


@only(CURRENT, why=PROCESSES)
def test_a_key_of_a_higher_priority_goes_first_in_every_process(served):
    url, _ = served
    counts = under_flood(url, "sk-batch", "sk-interactive")
    assert counts["behind"] < SLOTS and counts["ahead"] >= WAITING - SLOTS


def busy_slots(server: LlamaServer) -> int:
    slots = requests.get(server.url + "/slots", timeout=10).json()
    return sum(bool(slot["is_processing"]) for slot in slots)


@only(CURRENT, why=PROCESSES)
def test_a_keys_cap_holds_over_every_process(served, server):
    """The capped key (three slots) floods alone: llama-server never runs more than three of
    its requests at once, and does run three."""
    url, _ = served
    seen = []
    with Flood(url, "sk-capped", filling=1.0) as flood:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            seen.append(busy_slots(server))
            time.sleep(0.02)
        wait_for(lambda: line_metrics(url).get("capped") == 3.0, "the shared queue on /metrics")
    assert not flood.failures and flood.answers
    assert max(seen) == 3, seen


def line_metrics(url: str) -> dict:
    """The slots each key leases by the shared queue's series (``line_*``) on ``/metrics``, as
    whichever process answers sees them."""
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    found = re.findall(r'^oai_proxy_line_slots_held\{key="([^"]*)".*\} (\S+)$', text, re.M)
    return {key: float(value) for key, value in found}


# -- processes killed --------------------------------------------------------------------------


def stream(url: str, tokens: int, ended: list, cut: list) -> None:
    """A long stream of key a's: its last event in ``ended``, or its failure in ``cut``."""
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Tell a long story."}],
            "max_tokens": tokens, "stream": True}  # fmt: skip
    try:
        with requests.post(
            url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-a"},
            stream=True,
            timeout=120,
        ) as reply:
            last = [line for line in reply.iter_lines() if line][-1]
        ended.append(last)
    except requests.RequestException as exc:
        cut.append(exc)


def streams(url: str, count: int, tokens: int = LONGEST - 64) -> tuple:
    ended, cut = [], []
    threads = [
        threading.Thread(target=stream, args=(url, tokens, ended, cut)) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads, ended, cut


def picture(proxy: ProxyProcess) -> dict:
    """``/health``'s picture of the shared queue (a probe of the server that timed out on a busy
    machine, and so has none, is made again)."""
    shown: dict = {}

    def read() -> bool:
        shown.clear()
        shown.update(proxy.health())
        return "in_flight" in shown

    wait_for(read, "the server's health to be read", timeout=30)
    return shown


def short_answers(url: str, count: int) -> list:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    return [
        requests.post(
            url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-b"},
            timeout=60,
        ).status_code
        for _ in range(count)
    ]


@only(CURRENT, why=PROCESSES)
def test_a_worker_killed_holding_slots_gives_them_back_at_once(server, redis_url, tmp_path):
    """Which worker takes which stream is gunicorn's choice: the streams the other worker
    took (if any) run to their end."""
    with serving("two-workers", server.url, tmp_path, redis_url) as (url, (proxy,)):
        threads, ended, cut = streams(url, 2 * SLOTS)
        wait_for(lambda: picture(proxy)["in_flight"] == SLOTS, "every slot to be held")
        victim = max(picture(proxy)["processes"].items(), key=lambda item: item[1])[0]
        os.kill(int(victim), signal.SIGKILL)
        wait_for(
            lambda: str(victim) not in picture(proxy)["processes"],
            "the killed worker's slots to come back",
            timeout=10,
        )
        for thread in threads:
            thread.join(120)
        assert cut and all(last == b"data: [DONE]" for last in ended)
        assert short_answers(url, 4) == [200] * 4
        wait_for(lambda: picture(proxy)["in_flight"] == picture(proxy)["queued"] == 0, "idle")


@only(CURRENT, why=PROCESSES)
def test_a_proxy_killed_holding_slots_gives_them_back_within_its_lease(server, redis_url, tmp_path):
    with serving("two-proxies", server.url, tmp_path, redis_url) as (url, proxies):
        survivor, victim = proxies
        kept = streams(survivor.url, SLOTS // 2)
        lost = streams(victim.url, SLOTS)
        wait_for(lambda: picture(survivor)["in_flight"] == SLOTS, "every slot to be held")
        assert len(picture(survivor)["processes"]) == 2
        dead = f":{victim.process.pid}"
        victim.kill()
        killed = time.monotonic()
        wait_for(
            lambda: not [name for name in picture(survivor)["processes"] if name.endswith(dead)],
            "the killed proxy's slots to come back",
            timeout=LEASE + 5,
        )
        print(f"slots back {time.monotonic() - killed:.1f}s after the kill")
        threads, ended, cut = kept
        for thread in threads + lost[0]:
            thread.join(120)
        assert not cut and ended == [b"data: [DONE]"] * (SLOTS // 2)
        assert short_answers(survivor.url, 4) == [200] * 4
        wait_for(lambda: picture(survivor)["in_flight"] == 0, "idle")


# -- old servers -------------------------------------------------------------------------------


@only(*OLD, why="old servers refuse what they have no slot for: the queue must know their size")
@pytest.mark.parametrize("how", ["two-workers", "two-proxies"])
def test_an_old_server_is_never_sent_more_than_its_slots(kind, model, logs, redis_url, how):
    """Once the queue has learned the server's size (its first refusals), the slots every
    process holds never add up to more than it has; 64 streams end well. (A request sent as
    a slot frees may still be refused, as in one process: the server frees it a step after
    its last token.)"""
    log = logs / f"shared-{kind}-{how}.log"
    folder = logs / f"shared-{kind}-{how}"
    folder.mkdir()
    with (
        LlamaServer(model, log, kind=kind, parallel=SLOTS, ctx_size=SLOTS * 512) as server,
        serving(how, server.url, folder, redis_url) as (url, proxies),
    ):
        for _ in range(LEARNING):  # the slot ids it answers from say at least; a refusal, at most
            for thread in streams(url, 2 * SLOTS, tokens=32)[0]:
                thread.join(120)
            if picture(proxies[-1])["slots"] is not None:
                break
        assert picture(proxies[-1])["slots"] == SLOTS
        refused = log.read_text().count("slot unavailable")
        threads, ended, cut = streams(url, 64, tokens=32)
        held = []
        while any(thread.is_alive() for thread in threads):
            held.append(sum(picture(proxies[-1])["processes"].values()))
        assert not cut and ended == [b"data: [DONE]"] * 64
        refused = log.read_text().count("slot unavailable") - refused
        print(f"{kind} {how}: at most {max(held)} slots held at once; {refused} refused")
        assert max(held) == SLOTS
