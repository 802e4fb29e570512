"""The keys file and the models file changed under 64 open streams, on a real llama-server,
under waitress (the proxy reads them again in place), gunicorn and granian (their master
starts the workers afresh): no stream is cut, a key added is accepted, a key removed
refused, a model removed finishes its stream, and a file that does not parse is refused
with the reason."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

STREAMS = 64
TOKENS = 64
LONG = 1800  # the removed model's stream: still running when its model goes
KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"

[[keys]]
name = "bob"
key = "sk-bob"
"""
CHANGED_KEYS = KEYS.replace('"bob"', '"carol"').replace("sk-bob", "sk-carol")
MODELS = """
[models.tiny]
upstreams = ["{url}"]

[models.spare]
upstreams = ["{url}"]
"""


@pytest.fixture(scope="module")
def server(model, logs):
    with LlamaServer(
        model, logs / "reload-server.log", parallel=4, ctx_size=8192, extra_args=["--ignore-eos"]
    ) as server:
        yield server


def stream(proxy: ProxyProcess, key: str, model: str = "tiny", tokens: int = TOKENS) -> tuple:
    """``(status, completion tokens, finish reason)`` of one streamed chat."""
    body = {"model": model, "max_tokens": tokens, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Tell me a story."}]}  # fmt: skip
    with requests.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=300,
    ) as answer:
        if answer.status_code != 200:
            return answer.status_code, 0, None
        events = [
            json.loads(line[6:]) for line in answer.iter_lines() if line.startswith(b"data: {")
        ]
    choices = [choice for event in events for choice in event.get("choices", [])]
    finish = [choice["finish_reason"] for choice in choices if choice["finish_reason"]]
    usage = [e["usage"]["completion_tokens"] for e in events if e.get("usage")]
    return 200, usage[-1] if usage else 0, finish[-1] if finish else events[-1]


def status(proxy: ProxyProcess, key: str, model: str = "tiny") -> int:
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    return requests.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ).status_code


@pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian"])
def test_files_changed_under_open_streams_cut_none_of_them(server, logs, tmp_path, how):
    keys, models = tmp_path / "keys.toml", tmp_path / "models.toml"
    keys.write_text(KEYS)
    models.write_text(MODELS.format(url=server.url))
    args = ["--keys", str(keys), "--config", str(models), "--watch", "on", "--threads", "128"]
    with (
        ProxyProcess(server.url, logs / f"proxy-reload-{how}.log", how=how, args=args) as proxy,
        ThreadPoolExecutor(STREAMS + 1) as pool,
    ):
        assert status(proxy, "sk-bob") == 200
        spare = pool.submit(stream, proxy, "sk-alice", "spare", LONG)
        streams = [pool.submit(stream, proxy, "sk-alice") for _ in range(STREAMS)]
        wait_for(lambda: generating(server), "the streams to be under way")

        keys.write_text("[[keys]]\nname = ")  # half written: refused, the old keys kept
        wait_for(lambda: "reload refused" in proxy.log(), "the broken file to be refused")
        assert "not valid TOML" in proxy.log() and status(proxy, "sk-bob") == 200

        keys.write_text(CHANGED_KEYS)
        assert not spare.done()  # its model goes while it streams
        models.write_text(MODELS.format(url=server.url).split("[models.spare]")[0])
        # in place under waitress; under gunicorn and granian once every worker has started
        # afresh (an old one may answer meanwhile)
        wait_for(lambda: changed(proxy), "the added key, the removed key and model served", 60)

        if how == "waitress":  # SIGHUP reads them again in place, as the admin API does
            keys.write_text(KEYS)
            proxy.process.send_signal(signal.SIGHUP)
            wait_for(lambda: status(proxy, "sk-bob") == 200, "SIGHUP to read the keys again")
            keys.write_text(CHANGED_KEYS)
            reloaded = requests.post(
                proxy.url + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}
            )
            assert reloaded.json()["keys"] == ["alice", "carol"]

        answered = [future.result() for future in [spare, *streams]]
    assert answered == [(200, LONG, "length")] + [(200, TOKENS, "length")] * STREAMS  # none cut
    assert "Traceback" not in proxy.log()


def changed(proxy: ProxyProcess) -> bool:
    """Whether the changed files are served: the key added accepted, the key and the model
    removed refused, each asked twice (two workers). Not yet, while a question reaches a
    worker granian is stopping as it starts its next one, which closes it unanswered."""
    try:
        return all(
            status(proxy, "sk-carol") == 200
            and status(proxy, "sk-bob") == 401
            and status(proxy, "sk-alice", "spare") == 404
            for _ in range(2)
        )
    except requests.ConnectionError:
        return False


def generating(server: LlamaServer) -> bool:
    slots = requests.get(server.url + "/slots", timeout=10).json()
    return sum(slot["is_processing"] for slot in slots) == len(slots)
