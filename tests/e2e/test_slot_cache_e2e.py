"""KV caches that outlive a server: a conversation whose model was swapped out, or whose server
was killed, comes back to the cache it had, restored from disk into a slot; a cache of
another model is never restored."""

from __future__ import annotations

import json
import shutil
import signal
from itertools import pairwise

import pytest

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .managed import ADMIN, NO_UPSTREAM, servers_of
from .marks import BUNDLED, CURRENT, MANAGED, only
from .stoppingmodel import write_stopping_gguf

pytestmark = pytest.mark.e2e

DOCUMENT = " ".join(["the cat sat on the mat and the dog ran to the sea"] * 60)
QUESTIONS = ["What is it about?", "Who ran?", "Where to?", "And the cat?", "Why?", "What else?"]


def models_file(tmp_path, model, slot_save: str) -> str:
    other = write_stopping_gguf(tmp_path / "other.gguf")
    path = tmp_path / "models.toml"
    path.write_text(f"""
max_running = 1
[models.reader]
model = "{model}"
args = ["-np", "2", "-c", "8192"]
slot_save = "{slot_save}"
[models.other]
model = "{other}"
args = ["-np", "1", "-c", "4096"]
""")
    return str(path)


def proxy_of(program, tmp_path, model, logs, name: str, slot_save: str) -> ProxyProcess:
    name = f"{name}-{program.args[-1].rpartition('/')[2]}"
    return ProxyProcess(
        NO_UPSTREAM,
        logs / f"proxy-{name}.log",
        env=program.env,
        args=[
            "--config",
            models_file(tmp_path, model, slot_save),
            "--admin-key",
            ADMIN,
            "--slot-cache-dir",
            str(tmp_path / "slots"),
            "--log-dir",
            str(logs / name),
            *program.args,
        ],
    )


def turn(client, history: list, question: str, model: str = "reader"):
    history.append({"role": "user", "content": question})
    reply = client.chat.completions.create(
        model=model, messages=history, max_tokens=8, temperature=0
    )
    history.append({"role": "assistant", "content": reply.choices[0].message.content})
    return reply.usage


def saved_tokens(folder) -> int:
    """The most tokens a cache saved in ``folder`` holds."""
    return max(
        (json.loads(path.read_text())["tokens"] for path in folder.glob("*.json")), default=0
    )


def cached(usage) -> int:
    return usage.prompt_tokens_details.cached_tokens


@only(CURRENT, BUNDLED, why=MANAGED)
@pytest.mark.parametrize("how", ["swapped", "killed"])
def test_a_conversation_comes_back_to_its_cache(program, tmp_path, model, logs, how):
    slot_save = "on-stop" if how == "swapped" else "every-turn"
    with proxy_of(program, tmp_path, model, logs, how, slot_save) as proxy:
        client = proxy.sdk()
        history = [
            {"role": "system", "content": "Answer from the document."},
            {"role": "user", "content": DOCUMENT},
            {"role": "assistant", "content": "I have read it."},
        ]
        usages = [turn(client, history, question) for question in QUESTIONS[:3]]
        assert cached(usages[2]) >= 0.9 * usages[1].prompt_tokens  # the server's own cache
        if how == "swapped":
            turn(client, [], "Hello.", model="other")  # max_running 1: the reader stops
        else:
            (server,) = servers_of(proxy)
            wait_for(
                lambda: saved_tokens(tmp_path / "slots" / "reader") >= usages[2].prompt_tokens,
                "the third turn's cache to be saved",
            )
            server.send_signal(signal.SIGKILL)
            wait_for(lambda: not servers_of(proxy), "the server to die")
        usages += [turn(client, history, question) for question in QUESTIONS[3:]]
        print(how, [(usage.prompt_tokens, cached(usage)) for usage in usages])
        assert "restored a conversation's" in proxy.log()
        assert cached(usages[3]) >= 0.9 * usages[2].prompt_tokens
        new_tokens = usages[3].prompt_tokens - usages[2].prompt_tokens
        assert usages[3].prompt_tokens - cached(usages[3]) <= new_tokens
        assert all(
            cached(usage) >= 0.9 * before.prompt_tokens for before, usage in pairwise(usages[3:])
        )


@only(CURRENT, BUNDLED, why=MANAGED)
def test_a_cache_of_another_model_is_never_restored(program, tmp_path, model, logs):
    with proxy_of(program, tmp_path, model, logs, "foreign", "on-stop") as proxy:
        client = proxy.sdk()
        history = [{"role": "user", "content": DOCUMENT}]
        turn(client, history, QUESTIONS[0])
        turn(client, [], "Hello.", model="other")  # the reader's slots are saved
        saved = tmp_path / "slots" / "reader"
        wait_for(lambda: any(saved.glob("*.bin")), "the reader's cache on disk")
        foreign = tmp_path / "slots" / "other"
        foreign.mkdir(exist_ok=True)
        for path in saved.iterdir():
            shutil.copy(path, foreign / path.name)
        usage = turn(client, history[:1], QUESTIONS[0], model="other")
        assert cached(usage) < 0.5 * usage.prompt_tokens
        assert "restored" not in proxy.log()
