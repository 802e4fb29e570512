"""Servers the proxy starts and stops itself: real llama-server (and PowerInfer's) processes,
and the bundled llama.cpp engine; each test that lets the proxy pick the server runs with
both (the ``program`` fixture).

Every test starts the proxy as a process and looks at its children: what it started, when,
and that nothing outlives it.
"""

from __future__ import annotations

import re
import signal
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import find_server
from .managed import ADMIN, NO_UPSTREAM, Program, admin, gone, servers_of, supervisors_of, with_file
from .marks import BUNDLED, CURRENT, MANAGED, only

pytestmark = pytest.mark.e2e


def managed(program: Program, model, logs, name: str, *args: str) -> ProxyProcess:
    name = f"{name}-{program.args[-1].rpartition('/')[2]}"
    return ProxyProcess(
        NO_UPSTREAM,
        logs / f"proxy-{name}.log",
        env=program.env,
        args=[
            "--model",
            str(model),
            *program.args,
            "--log-dir",
            str(logs / f"servers-{name}"),
            "--admin-key",
            ADMIN,
            "--server-args",
            "-np 2 -c 2048",
            *args,
        ],
    )


@only(CURRENT, BUNDLED, why=MANAGED)
def test_one_command_from_a_model_file(program, model, logs):
    with managed(program, model, logs, "one-command") as proxy:
        wait_for(lambda: "ready in" in proxy.log(), "the server to start with the proxy")
        assert len(servers_of(proxy)) == 1  # before any request
        whole, streamed = greedy(proxy), greedy(proxy, stream=True)
        assert whole == streamed and whole[0] and whole[1] in ("stop", "length")
        assert len(servers_of(proxy)) == 1
        assert "ready in" in proxy.log()


@only(CURRENT, BUNDLED, why=MANAGED)
def test_concurrent_first_requests_share_one_start(program, tmp_path, model, logs):
    text = f"""
[models.lazy]
model = "{model}"
args = ["-np", "2", "-c", "2048"]
"""
    with with_file(tmp_path, logs, "eight", text, program=program) as proxy:
        assert servers_of(proxy) == []  # started by the first requests, not before
        eight_first_requests_start_one_server(proxy, "lazy")
        assert len(servers_of(proxy)) == 1


def eight_first_requests_start_one_server(proxy: ProxyProcess, name: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(
                lambda _: proxy.sdk().completions.create(
                    model=name, prompt="the cat", max_tokens=3
                ),
                range(8),
            )
        )
    assert all(r.choices[0].text is not None for r in replies)
    assert proxy.log().count(f"starting {name}") == 1


@only(CURRENT, BUNDLED, why=MANAGED)
def test_a_server_killed_mid_stream_is_restarted(program, model, logs):
    """The stream it served ends with one error event; requests waiting for its one slot
    wait for the restart instead."""
    with managed(
        program,
        model,
        logs,
        "restart",  # the stream runs on until killed
        "--server-args",
        "-np 1 -c 1024 --context-shift",
    ) as proxy:
        client = proxy.sdk()
        client.completions.create(model="any", prompt="warm", max_tokens=2)
        (server,) = servers_of(proxy)
        events = []
        with (
            ThreadPoolExecutor(3) as pool,
            requests.post(
                proxy.url + "/v1/completions",
                stream=True,
                timeout=60,
                json={
                    "prompt": "the cat",
                    "max_tokens": 100000,
                    "stream": True,
                    "logit_bias": {"2": -100},
                },
            ) as response,
        ):
            waiting = []
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    events.append(line[6:])
                    if len(events) == 1:  # held mid-stream while the others line up
                        server.suspend()
                        waiting = [
                            pool.submit(
                                client.completions.create,
                                model="any",
                                prompt="queued",
                                max_tokens=3,
                                temperature=0,
                                extra_body={"cache_prompt": False},
                            )
                            for _ in range(3)
                        ]  # one waits inside the server
                        wait_for(
                            lambda: (
                                admin(proxy, "GET", "/models").json()["models"][0]["replicas"][0][
                                    "queued"
                                ]
                                == 3
                            ),
                            "three requests waiting",
                        )
                        server.kill()
            replies = [future.result(timeout=60) for future in waiting]
        errors = [e for e in events if e.startswith(b'{"error"')]
        assert len(errors) == 1 and events[-1] == b"[DONE]"
        (restarted,) = servers_of(proxy)
        assert restarted.pid != server.pid
        # each waiting request got the whole answer the restarted server gives it
        again = client.completions.create(
            model="any",
            prompt="queued",
            max_tokens=3,
            temperature=0,
            extra_body={"cache_prompt": False},
        )
        expected = (again.choices[0].text, again.choices[0].finish_reason)
        assert expected[0] and expected[1] == "length"
        assert [(r.choices[0].text, r.choices[0].finish_reason) for r in replies] == [expected] * 3


@only(CURRENT, BUNDLED, why=MANAGED)
def test_killing_the_proxy_leaves_no_server(program, model, logs):
    proxy = managed(program, model, logs, "sigkill").start()
    try:
        proxy.sdk().completions.create(model="any", prompt="hi", max_tokens=2)
        servers = servers_of(proxy)
        assert servers
    finally:
        proxy.process.send_signal(signal.SIGKILL)
        proxy.process.wait()
        proxy.stop()
    # within the poll's bound: a loaded machine may take a moment to deliver the signal
    wait_for(lambda: all(gone(server) for server in servers), "the servers to exit", timeout=10)


@only(CURRENT, BUNDLED, why=MANAGED)
def test_a_corrupt_model_gives_the_servers_complaint(program, tmp_path, logs):
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    with managed(program, corrupt, logs, "corrupt") as proxy:
        starts = []
        for _ in range(2):
            response = requests.post(
                proxy.url + "/v1/completions", timeout=60, json={"prompt": "hi", "max_tokens": 2}
            )
            assert response.status_code == 503
            message = response.json()["error"]["message"]
            # why, in the server's own first error; its whole output, which names paths on
            # the proxy's machine, is the operator's (the log, at ERROR, and the admin API)
            assert re.search(r"could not be started: .*(header|version|magic)", message)
            assert str(tmp_path) not in message
            assert "ERROR" in proxy.log() and "failed to load model" in proxy.log()
            starts.append(proxy.log().count("starting corrupt.gguf"))
        assert starts[1] == starts[0] + 1  # the next request tried again
        (listed,) = admin(proxy, "GET", "/models").json()["models"]
        state = listed["replicas"][0]["managed"]
        assert state["state"] == "failed" and "failed to load model" in state["error"]
        assert state["reason"] in message


@only(CURRENT, BUNDLED, why=MANAGED)
def test_ttl_swap_preload_and_admin(program, tmp_path, model, logs):
    binary = find_server("llamacpp")
    text = f"""
max_running = 1
[models.first]
model = "{model}"
args = ["-np", "1", "-c", "1024"]
ttl = 2
[models.second]
cmd = "{binary.path} -m ${{MODEL}} --host 127.0.0.1 --port ${{PORT}} -np 1 -c 1024"
model = "{model}"
preload = true
"""
    with with_file(tmp_path, logs, "swap", text, program=program) as proxy:
        wait_for(lambda: len(servers_of(proxy)) == 1, "the preloaded server")
        states = {
            m["id"]: m["replicas"][0]["managed"]["state"]
            for m in admin(proxy, "GET", "/models").json()["models"]
        }
        wait_for(
            lambda: (
                admin(proxy, "GET", "/models").json()["models"][1]["replicas"][0]["managed"][
                    "state"
                ]
                == "ready"
            ),
            "the preload to finish",
        )
        assert states["first"] == "stopped"
        client = proxy.sdk()
        for name in ("first", "second", "first"):  # one at a time: each start stops the other
            reply = client.completions.create(model=name, prompt="the cat", max_tokens=3)
            assert reply.model == name and reply.choices[0].text is not None
            assert len(servers_of(proxy)) == 1
            assert [
                m["id"]
                for m in admin(proxy, "GET", "/models").json()["models"]
                if m["replicas"][0]["managed"]["state"] == "ready"
            ] == [name]
        wait_for(
            lambda: servers_of(proxy) == [], "the idle server to stop after its ttl", timeout=10
        )
        assert admin(proxy, "POST", "/models/second/load").json()["state"] == "ready"
        assert "llama" in admin(proxy, "GET", "/models/second/log?lines=50").text.lower()
        assert admin(proxy, "POST", "/models/second/unload").json()["state"] == "stopped"
        assert servers_of(proxy) == []
        refused = requests.get(proxy.url + "/admin/models", timeout=10)
        assert refused.status_code == 401
        listed = client.models.list().data
        assert [m.id for m in listed] == ["first", "second"]


@only(CURRENT, why=MANAGED)
def test_a_cold_model_is_answered_by_a_warm_equal_without_a_swap(program, tmp_path, model, logs):
    text = f"""
max_running = 1
[models.first]
model = "{model}"
args = ["-np", "1", "-c", "1024"]
warm = ["second"]
[models.second]
model = "{model}"
args = ["-np", "1", "-c", "1024"]
preload = true
"""
    with with_file(tmp_path, logs, "warm", text, program=program) as proxy:
        wait_for(lambda: ready_models(proxy) == ["second"], "the preload to finish")
        answered = proxy.sdk().completions.with_raw_response.create(
            model="first", prompt="the cat", max_tokens=3
        )
        assert answered.parse().model == "second"
        assert answered.headers["x-oai-proxy-served-model"] == "second"
        assert ready_models(proxy) == ["second"]  # no swap: first never started
        assert admin(proxy, "POST", "/models/second/unload").json()["state"] == "stopped"
        reply = proxy.sdk().completions.create(model="first", prompt="the cat", max_tokens=3)
        assert reply.model == "first" and ready_models(proxy) == ["first"]  # none warm: it starts


def ready_models(proxy: ProxyProcess) -> list:
    """The ids of the models whose servers are ready now."""
    return [
        m["id"]
        for m in admin(proxy, "GET", "/models").json()["models"]
        if m["replicas"][0]["managed"]["state"] == "ready"
    ]


def test_a_kind_a_server_runs_from_cmd(tmp_path, model, logs):
    old = find_server("powerinfer")
    text = f"""
[models.old]
cmd = "{old.path} -m ${{MODEL}} --host 127.0.0.1 --port ${{PORT}}"
model = "{model}"
"""
    with with_file(tmp_path, logs, "powerinfer", text) as proxy:
        reply = proxy.sdk().completions.create(model="old", prompt="the cat", max_tokens=4)
        assert reply.choices[0].text is not None
        assert proxy.health()["generation"] == "powerinfer"


@only(CURRENT, BUNDLED, why=MANAGED)
def test_gunicorn_workers_share_one_supervisor(program, model, logs):
    """Two workers, one server: started once, outliving a killed worker, gone with the
    master."""
    proxy = managed(
        program,
        model,
        logs,
        "workers",
        "--server",
        "gunicorn",
        "--workers",
        "2",
        "--server-args",
        "-np 2 -c 2048 --context-shift",
    ).start()  # a stream runs on
    try:
        (supervisor,) = supervisors_of(proxy)
        eight_first_requests_start_one_server(proxy, "tiny-llama.gguf")
        (server,) = servers_of(proxy)
        assert server.parent().pid == supervisor.pid
        workers = [
            child
            for child in psutil.Process(proxy.process.pid).children()
            if child.pid != supervisor.pid
        ]
        assert len(workers) == 2
        with requests.post(
            proxy.url + "/v1/completions",
            stream=True,
            timeout=60,
            json={
                "prompt": "the cat",
                "max_tokens": 100000,
                "stream": True,
                "logit_bias": {"2": -100},
            },
        ) as response:
            lines = response.iter_lines()  # kept: dropping it would close the stream
            next(lines)
            assert _in_flight(proxy) == 1
            for worker in workers:  # whichever held the stream: its hold on the server ends
                worker.kill()
        wait_for(
            lambda: len(psutil.Process(proxy.process.pid).children()) == 3,
            "gunicorn to replace its workers",
        )
        wait_for(lambda: _in_flight(proxy) == 0, "the killed worker's request to be let go")
        assert servers_of(proxy) == [server]  # the server outlived its users
        assert proxy.sdk().completions.create(model="any", prompt="hi", max_tokens=2).choices
    finally:
        proxy.process.send_signal(signal.SIGKILL)
        proxy.process.wait()
        proxy.stop()
    wait_for(
        lambda: gone(server) and gone(supervisor),
        "the server and the supervisor to exit",
        timeout=10,
    )


def _in_flight(proxy: ProxyProcess):
    try:
        return admin(proxy, "GET", "/models").json()["models"][0]["replicas"][0]["managed"][
            "in_flight"
        ]
    except (requests.RequestException, ValueError):
        return None


@only(CURRENT, BUNDLED, why=MANAGED)
def test_gunicorn_wsgi_runs_the_supervisor_from_its_hooks(program, model, logs):
    proxy = ProxyProcess(
        NO_UPSTREAM,
        logs / "proxy-wsgi.log",
        how="wsgi",
        env={
            **program.env,
            "PROXY_MODEL": str(model),
            "PROXY_LLAMA_SERVER": program.args[-1],
            "PROXY_LOG_DIR": str(logs / "servers-wsgi"),
            "PROXY_WORKERS": "2",
            "PROXY_SERVER_ARGS": "-np 2 -c 2048",
        },
        args=["--workers", "2"],
    )
    with proxy:
        text, finish = greedy(proxy)
        assert text and finish in ("stop", "length")
        (server,) = servers_of(proxy)
        (supervisor,) = supervisors_of(proxy)
    assert gone(server) and gone(supervisor)  # SIGTERM: stopped in order


def test_a_slow_start_keeps_the_stream_alive(tmp_path, model, logs):
    binary = find_server("llamacpp")
    server = f"{binary.path} -m {model} --host 127.0.0.1 --port ${{PORT}} -np 1 -c 1024"
    text = f"""
[models.slow]
cmd = "sh -c 'sleep 3; exec {server}'"
[models.broken]
cmd = "sh -c 'sleep 3; echo cannot open the model on port ${{PORT}}; exit 1'"
"""
    with with_file(tmp_path, logs, "slow", text) as proxy:
        for name in ("slow", "broken"):
            with requests.post(
                proxy.url + "/v1/chat/completions",
                stream=True,
                timeout=60,
                json={
                    "model": name,
                    "max_tokens": 3,
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ) as reply:
                assert reply.status_code == 200  # committed while the server started
                lines = [line for line in reply.iter_lines() if line]
            assert lines[0].startswith(b": ")  # a comment, which clients skip
            assert lines[-1] == b"data: [DONE]"
            if name == "slow":
                assert b'"finish_reason"' in lines[-2]
            else:
                # why, in the server's own words, as the stream's one error event
                assert b'"error"' in lines[-2]
                assert b"could not be started: cannot open the model on port" in lines[-2]
        # ready now, no comments needed: the stream is the same answer as a whole one
        streamed = greedy(proxy, "slow", stream=True)
        assert streamed == greedy(proxy, "slow") and streamed[0]


def greedy(proxy: ProxyProcess, model: str = "any", stream: bool = False) -> tuple:
    """``(text, finish reason)`` of the greedy answer to "hi", whole or streamed, its prompt
    evaluated whole each time (a reused cache's rounding can tip the random model's argmax)."""
    options = dict(
        model=model,
        max_tokens=4,
        temperature=0,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"cache_prompt": False},
    )
    if not stream:
        choice = proxy.sdk().chat.completions.create(**options).choices[0]
        return choice.message.content, choice.finish_reason
    chunks = list(proxy.sdk().chat.completions.create(**options, stream=True))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return text, chunks[-1].choices[0].finish_reason
