"""The scale-out recipe of docs/models-and-fleet.md, run on loopback: three llama-servers of
one model, Redis, two proxies (waitress, and gunicorn with two workers) and nginx in front.

The models file, keys file, proxy command lines and nginx config are the recipe's own code
blocks (each after a ``<!-- scale-out: NAME -->`` line); only addresses, ports and paths are
replaced, each replacement failing when the recipe no longer holds what it replaces.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import psutil
import pytest
import requests

from proxy.access.keyring import KeySpec, parse_keys
from proxy.config.files import tomllib
from proxy.core.conversation import conversation_id
from proxy.core.types import GenerationRequest, Message
from proxy.fleet.placement import rank
from tests.polling import wait_for
from tests.processes import ROOT, ProxyProcess, free_port

from .llama_server import LlamaServer
from .tinymodel import _WORDS

BLOCK = re.compile(r"^<!-- scale-out: (\w+) -->\n```\w*\n(.*?)^```$", re.M | re.S)
BLOCKS = ("models", "keys", "proxies", "nginx")
REPLICA_ADDRESSES = ("http://10.0.0.2:8080", "http://10.0.0.3:8080", "http://10.0.0.4:8080")
PROXY_ADDRESSES = ("10.0.0.10:8081", "10.0.0.11:8081")
REDIS_ADDRESS = "redis://10.0.0.5:6379/0"
KEY_VALUES = {"ALICE_KEY": "sk-scaleout-alice", "BATCH_KEY": "sk-scaleout-batch"}
UPSTREAM_HEADER = "X-Upstream-Addr"  # set by the tests' nginx.conf around the recipe's site

NGINX_CONF = """\
worker_processes 1;
{user}
events {{
    worker_connections 1024;
}}
http {{
    log_format upstreams '$request $status $upstream_addr $upstream_status $request_time';
    access_log {folder}/access.log upstreams;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    add_header {header} $upstream_addr always;
{site}
}}
"""


def readme_blocks() -> dict:
    """The recipe's code blocks in docs/models-and-fleet.md, by name."""
    blocks = dict(
        BLOCK.findall((ROOT / "docs" / "models-and-fleet.md").read_text(encoding="utf-8"))
    )
    missing = [name for name in BLOCKS if name not in blocks]
    if missing:
        pytest.fail(f"docs/models-and-fleet.md no longer marks the scale-out block(s) {missing}")
    return blocks


def substitute(text: str, replacements: dict, what: str) -> str:
    """``text`` with every key of ``replacements`` replaced; a key it lacks means the recipe
    changed under the test."""
    for old, new in replacements.items():
        if old not in text:
            pytest.fail(
                f"the scale-out recipe's {what} no longer holds {old!r}: "
                f"update tests/e2e/scaleout.py with it"
            )
        text = text.replace(old, new)
    return text


def command_lines(block: str) -> list:
    """The commands of a shell block: comments dropped, continued lines joined."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def system_program(name: str, package: str) -> str:
    """The path of a Debian package's program (``/usr/sbin`` may be off a user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (.ci/run does)")
    return found


class Nginx:
    """Debian's nginx as the current user, serving ``site`` (an ``http {}``-context snippet)
    with every file it writes under ``folder``."""

    def __init__(self, binary: str, site: str, folder: Path, port: int) -> None:
        self.binary = binary
        self.folder = folder
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # Run as root, nginx would hand its workers to "nobody", who cannot enter tmp_path.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        self.conf = folder / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(user=user, folder=folder, site=site, header=UPSTREAM_HEADER)
        )
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "Nginx":
        # A process group of its own, for a kill to reach the workers too; not a session of
        # its own: Linux's autogroup scheduling then left it seconds without a CPU (streams
        # arriving in one piece) on a busy machine.
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.folder),
                "-c",
                str(self.conf),
                "-e",
                str(self.folder / "error.log"),
                "-g",
                f"daemon off; pid {self.folder / 'nginx.pid'};",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=os.setpgrp,
        )
        wait_for(self._listening, "nginx to listen", timeout=10)
        return self

    def __exit__(self, *exc_info) -> None:
        """Fast shutdown (SIGTERM) takes the workers along; the group is killed if not."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"nginx exited with {self.process.returncode}:\n{self.error_log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")

    def connections_to(self, port: int) -> int:
        """The connections nginx holds to ``port``: a dead upstream's stay until nginx has
        read their end."""
        workers = {worker.pid for worker in psutil.Process(self.process.pid).children()}
        return sum(
            1
            for connection in psutil.net_connections("tcp")
            if connection.pid in workers and connection.raddr and connection.raddr.port == port
        )


@dataclass
class Scaleout:
    """Everything the recipe runs, and the keys its keys file names."""

    replicas: list  # LlamaServer, in the models file's order
    waitress: ProxyProcess
    gunicorn: ProxyProcess
    nginx: Nginx
    model: str  # the models file's default
    keys: list  # KeySpec

    @property
    def url(self) -> str:
        return self.nginx.url

    def key(self, limited: bool) -> KeySpec:
        """The keys file's first key with (or without) a requests-per-minute limit."""
        return next(key for key in self.keys if bool(key.rpm) == limited)

    def address(self, proxy: ProxyProcess) -> str:
        """How nginx names ``proxy`` in its upstream header."""
        return f"127.0.0.1:{proxy.port}"

    def turn(self, conversation: "Conversation", *, stream: bool) -> int:
        """One more turn of ``conversation`` through nginx; the replica that served it."""
        before = counters(self.replicas)
        answer = complete(
            self.url, self.key(limited=False), self.model, conversation.messages, stream=stream
        )
        conversation.went_on(answer)
        return served_by(self.replicas, before, answer.prompt_tokens)

    def round(self, conversations: list, streams: list) -> dict:
        """One more turn of every conversation, all at once (``streams``: which are streamed);
        the prompt tokens each replica took, by index."""
        before = counters(self.replicas)
        key = self.key(limited=False)
        with ThreadPoolExecutor(len(conversations)) as pool:
            answers = list(
                pool.map(
                    lambda conversation, stream: complete(
                        self.url, key, self.model, conversation.messages, stream=stream
                    ),
                    conversations,
                    streams,
                )
            )
        for conversation, answer in zip(conversations, answers, strict=True):
            conversation.went_on(answer)
        return taken(self.replicas, before, sum(answer.prompt_tokens for answer in answers))

    def spread(self, first_seed: int, per_replica: int) -> list:
        """New conversations after their first turn, ``per_replica`` on each replica, as
        (replica, conversation) pairs.

        Only conversations whose hashing ranks first a replica still short of its share are
        started, so that no replica holds more of them than it has slots (and evicts their
        caches); where one lands is the proxies' choice, and that decides.
        """
        urls = [replica.url for replica in self.replicas]
        kept: dict = {index: [] for index in range(len(urls))}
        for seed in range(first_seed, first_seed + 50 * per_replica * len(urls)):
            conversation = Conversation(seed)
            if len(kept[first_choice(conversation.messages, urls)]) == per_replica:
                continue
            share = kept[self.turn(conversation, stream=False)]
            if len(share) < per_replica:
                share.append(conversation)
            if all(len(share) == per_replica for share in kept.values()):
                return [(index, c) for index, share in kept.items() for c in share]
        pytest.fail(
            f"the proxies did not spread conversations over every replica: "
            f"{ {index: len(share) for index, share in kept.items()} }"
        )

    def one_per_replica(self, text: str) -> list:
        """Chats, one for each replica, whose conversation hashing ranks that replica first:
        ``text`` and a number."""
        urls = [replica.url for replica in self.replicas]
        chosen: dict = {}
        for number in range(100 * len(urls)):
            messages = [{"role": "user", "content": f"{text} {number}"}]
            chosen.setdefault(first_choice(messages, urls), messages)
            if len(chosen) == len(urls):
                return [chosen[index] for index in range(len(urls))]
        pytest.fail(f"no numbering of {text!r} gives each replica a chat of its own")


def first_choice(messages: list, urls: list) -> int:
    """The replica rendezvous hashing ranks first for a conversation, as every proxy does."""
    request = GenerationRequest(messages=tuple(Message(m["role"], m["content"]) for m in messages))
    return urls.index(rank(conversation_id(request), urls)[0])


@contextmanager
def scaleout(model: Path, redis_url: str, folder: Path) -> Iterator[Scaleout]:
    """Start the recipe; everything stops when the block ends, however it ends."""
    blocks = readme_blocks()
    commands = command_lines(blocks["proxies"])
    if [("--server gunicorn" in line) for line in commands] != [False, True]:
        pytest.fail(
            "the scale-out recipe's proxies block no longer runs a proxy under "
            "waitress, then one under gunicorn"
        )
    nginx_binary = system_program("nginx", "nginx")
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(
                LlamaServer(
                    model,
                    folder / f"replica-{index}.log",
                    parallel=4,
                    ctx_size=8192,
                    extra_args=["--metrics"],
                )
            )
            for index in range(len(REPLICA_ADDRESSES))
        ]
        models = folder / "models.toml"
        models.write_text(
            substitute(
                blocks["models"],
                dict(zip(REPLICA_ADDRESSES, (replica.url for replica in replicas), strict=True)),
                "models file",
            )
        )
        keys = folder / "keys.toml"
        keys.write_text(blocks["keys"])
        ports = [free_port() for _ in commands]
        proxies = []
        for index, (line, port) in enumerate(zip(commands, ports, strict=True)):
            args = shlex.split(
                substitute(
                    line,
                    {
                        "oai-proxy ": "",  # run as python -m proxy, from this checkout
                        "--host 0.0.0.0": "--host 127.0.0.1",
                        "--port 8081": f"--port {port}",
                        "--config models.toml": f"--config {models}",
                        "--keys keys.toml": f"--keys {keys}",
                        REDIS_ADDRESS: redis_url,
                    },
                    "proxy command",
                )
            )
            proxies.append(
                stack.enter_context(
                    ProxyProcess.as_given(
                        [sys.executable, "-m", "proxy", *args],
                        port,
                        folder / f"proxy-{index}.log",
                        env=KEY_VALUES,
                    )
                )
            )
        nginx_port = free_port()
        site = substitute(
            blocks["nginx"],
            {
                "listen 80;": f"listen 127.0.0.1:{nginx_port};",
                **{
                    address: f"127.0.0.1:{port}"
                    for address, port in zip(PROXY_ADDRESSES, ports, strict=True)
                },
            },
            "nginx config",
        )
        nginx_folder = folder / "nginx"
        nginx_folder.mkdir()
        nginx = stack.enter_context(Nginx(nginx_binary, site, nginx_folder, nginx_port))
        keyring = parse_keys(tomllib.loads(blocks["keys"]), "docs/models-and-fleet.md", KEY_VALUES)
        default = tomllib.loads(blocks["models"])["default"]
        yield Scaleout(replicas, proxies[0], proxies[1], nginx, default, keyring)


# -- talking to it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One chat completion as the client saw it, and the proxy nginx passed it to."""

    text: str
    usage: dict
    proxy: str

    @property
    def prompt_tokens(self) -> int:
        return self.usage["prompt_tokens"]

    @property
    def cached_tokens(self) -> int:
        return self.usage["prompt_tokens_details"]["cached_tokens"]


def chat(url: str, key: KeySpec, body: dict, **options) -> requests.Response:
    """POST a chat completion with ``key``; the caller reads (and closes) the answer."""
    return requests.post(
        url + "/v1/chat/completions",
        json=body,
        timeout=60,
        headers={"Authorization": "Bearer " + key.secret.decode()},
        **options,
    )


def sse_events(response: requests.Response) -> Iterator[str]:
    """The ``data:`` payloads of a streamed answer, ``[DONE]`` included, as they come."""
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data: "):
            yield line[len("data: ") :]


def complete(
    url: str, key: KeySpec, model: str, messages: list, *, stream: bool, max_tokens: int = 8
) -> Answer:
    """A whole chat turn, streamed or not, checked to have ended as OpenAI's do."""
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    with chat(url, key, body, stream=stream) as response:
        assert response.status_code == 200, response.text
        proxy = response.headers[UPSTREAM_HEADER]
        if not stream:
            reply = response.json()
            return Answer(reply["choices"][0]["message"]["content"], reply["usage"], proxy)
        events = list(sse_events(response))
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"]
    )
    return Answer(text, chunks[-1]["usage"], proxy)


@dataclass
class Outcome:
    """What the client saw of one request, filled in while it runs."""

    stream: bool
    sent: float = field(default_factory=time.monotonic)
    status: Optional[int] = None
    proxy: str = ""  # nginx's upstream header: the proxies it tried, comma-separated
    events: int = 0  # data events received, of a stream
    complete: bool = False  # a whole JSON answer, or a stream through its [DONE]
    error: str = ""  # how the connection failed, when it did
    error_type: str = ""  # the error's type, when an answer came in OpenAI's error shape
    ended: Optional[float] = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.complete and not self.error


def attempt(url: str, key: KeySpec, body: dict, outcome: Outcome) -> Outcome:
    """Send ``body`` and record in ``outcome`` what comes back, however it ends."""
    try:
        with chat(url, key, {**body, "stream": outcome.stream}, stream=outcome.stream) as response:
            outcome.status = response.status_code
            outcome.proxy = response.headers.get(UPSTREAM_HEADER, "")
            if response.ok and outcome.stream:
                for event in sse_events(response):
                    outcome.events += 1
                    outcome.complete = event == "[DONE]"
            elif response.ok:
                outcome.complete = "choices" in response.json()
            else:
                outcome.error_type = response.json()["error"]["type"]
    except (requests.RequestException, ValueError, KeyError) as exc:  # ValueError: not JSON
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.ended = time.monotonic()
    return outcome


class Traffic:
    """Short requests one after another from a thread, streamed and not, until stopped."""

    def __init__(self, url: str, key: KeySpec, model: str) -> None:
        self.url, self.key, self.model = url, key, model
        self.outcomes: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(60)

    def sent_after(self, moment: float) -> list:
        return [outcome for outcome in list(self.outcomes) if outcome.sent > moment]

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            outcome = Outcome(stream=number % 2 == 1)
            self.outcomes.append(outcome)
            body = {
                "model": self.model,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"question {number}"}],
            }
            attempt(self.url, self.key, body, outcome)
            number += 1


def document(seed: int, words: int = 200) -> str:
    """A long first message of the tiny model's own words, one of its own per seed."""
    chooser = random.Random(seed)
    return " ".join(chooser.choice(_WORDS) for _ in range(words))


class Conversation:
    """A chat that goes on turn by turn: a long first message, then short questions."""

    def __init__(self, seed: int) -> None:
        self.messages = [{"role": "user", "content": document(seed)}]
        self.answers: list = []

    def went_on(self, answer: Answer) -> None:
        """Record ``answer`` and ask the next question."""
        self.answers.append(answer)
        self.messages = self.messages + [
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": f"and {_WORDS[len(self.answers)]} then"},
        ]


# -- which replica served a turn -----------------------------------------------------------


def prompt_tokens_seen(server: LlamaServer) -> int:
    """Prompt tokens the server has taken, evaluated or from its cache (its ``/metrics``)."""
    text = requests.get(server.url + "/metrics", timeout=10).text
    counts = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(
            ("llamacpp:prompt_tokens_total ", "llamacpp:prompt_tokens_cached_total ")
        )
    }
    return int(
        counts["llamacpp:prompt_tokens_total"] + counts["llamacpp:prompt_tokens_cached_total"]
    )


def counters(replicas: list) -> dict:
    """:func:`prompt_tokens_seen` of each running replica, by index."""
    return {
        index: prompt_tokens_seen(server)
        for index, server in enumerate(replicas)
        if server.proc.poll() is None
    }


def taken(replicas: list, before: dict, prompt_tokens: int) -> dict:
    """How many prompt tokens each replica took since ``before`` (:func:`counters`), once
    they add up to ``prompt_tokens``: a server counts a prompt as it sends the answer."""
    moved: dict = {}

    def counted() -> bool:
        after = counters(replicas)
        moved.clear()
        moved.update(
            {
                index: after[index] - before.get(index, 0)
                for index in after
                if after[index] != before.get(index, 0)
            }
        )
        return sum(moved.values()) >= prompt_tokens

    wait_for(counted, "the replicas to count the prompts", timeout=10)
    return dict(moved)


def served_by(replicas: list, before: dict, prompt_tokens: int) -> int:
    """The replica that served a turn run alone: the one that took its whole prompt."""
    moved = taken(replicas, before, prompt_tokens)
    assert list(moved.values()) == [prompt_tokens], moved
    return next(iter(moved))
