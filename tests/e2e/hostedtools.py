"""What the e2e tests of hosted tools share: a model that calls the reference filesystem
server's ``read_text_file`` and then answers with the file's word, served by a server of
one kind behind the proxy, whose models file gives the model that server's tools.

The model (see :mod:`.scriptedmodel`) first calls ``read_text_file`` on :data:`NOTES`, in
the Hermes/Qwen syntax (``<tool_call>{…}</tool_call>``) that current llama-server's chat
layer reads under the Qwen2.5 template, and the proxy's own formats read on the servers of
2023 (``plain`` under the historic template, theirs by default; ``hermes`` alike under a
ChatML one). The file holds
:data:`WORD`, which the model cannot copy: it is the trigger of the script that answers
:data:`ANSWER`, and it is in the prompt only once the tool's result is. So an answer with
the word shows the model read the file through the MCP server. The word is one the
tokenizer's merges make of plain text, which every server reads in a prompt (the servers of
2023 read special tokens there in part or not at all), and the call's markers are plain
text too, as the servers of 2023 leave special tokens out of what they write.

The same model calls the hostile tier's tools when the question holds their triggers
(:data:`HOSTILE`), on the server of :mod:`.mcpfailures`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ADMIN, ProxyProcess

from .families import CHATML, FAMILIES
from .llama_server import LlamaServer
from .scriptedmodel import Script, Tokens, write_scripted_gguf
from .test_mcp_servers_e2e import npm_server

MODEL = "reader"  # the model whose models file entry gives it the filesystem server's tools
SERVER = "fs"  # the filesystem server's name in the models file
TOOL = "read_text_file"
NOTES = "notes.txt"
WORD = "Zebrafox"
CONTENT = f"The secret word is {WORD} and nothing else.\n"  # the word after a space
ANSWER = f"The file says {WORD}."
QUESTION = f"What does {NOTES} say?"
CONTEXT = 16384  # the filesystem server's tools, described, take some 7,000 tokens a turn
# a word in the question -> the call of the failing server's tool the model makes for it
HOSTILE = {
    "HugeCase": ("huge", {"size": 100 * 1024 * 1024}),
    "HangCase": ("hang", {}),
    "LeakCase": ("remember", {"text": "I have no key to give."}),
}
QWEN = next(family for family in FAMILIES if family.name == "qwen2.5")
TOKENS = Tokens(control=CHATML["control"], bos=CHATML["bos"], eos=CHATML["eos"], add_bos=False)


def call(name: str, arguments: dict) -> str:
    """A call as Hermes and Qwen models write it."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def write_model(path: Path) -> Path:
    """The model, for servers of every kind."""
    scripts = [
        Script(call(TOOL, {"path": NOTES})),
        Script(ANSWER, trigger=f" {WORD}", priority=1, word=True),
        *(Script(call(*called), trigger=trigger) for trigger, called in HOSTILE.items()),
    ]
    return write_scripted_gguf(
        path, scripts, TOKENS, QWEN.chat_template(), name=MODEL, old_servers=True
    )


@dataclass(frozen=True)
class Hosted:
    """A proxy whose model :data:`MODEL` may call the tools of :data:`SERVER`, a server of
    the filesystem over ``folder`` (which holds :data:`NOTES`), and what it should answer."""

    proxy: ProxyProcess
    server: LlamaServer
    folder: Path
    answer: str = ANSWER

    def metrics(self) -> dict:
        """``/metrics`` as ``{(sample name, sorted labels): value}``."""
        text = requests.get(
            f"{self.proxy.url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
        ).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def calls(self, tool: str = TOOL, server: str = SERVER) -> float:
        """The calls of ``tool`` of ``server`` counted on ``/metrics``."""
        labels = tuple(sorted({"server": server, "tool": tool}.items()))
        return self.metrics().get(("oai_proxy_tool_calls_total", labels), 0)


def models_file(upstream: str, folder: Path, more: str = "", others: Optional[dict] = None) -> str:
    """The models file: :data:`MODEL` on ``upstream`` with the tools of :data:`SERVER`, the
    filesystem server over ``folder``; ``others``, more models on ``upstream`` (a name: the
    lines of its entry), and ``more`` added as it is."""
    command = json.dumps([npm_server("filesystem"), str(folder)])
    entries = "".join(
        f'[models.{name}]\nupstreams = ["{upstream}"]\n{lines}\n'
        for name, lines in (others or {}).items()
    )
    return (
        f'default = "{MODEL}"\n'
        f'[models.{MODEL}]\nupstreams = ["{upstream}"]\ntools = ["{SERVER}"]\n'
        f"[models.{MODEL}.defaults]\ncache_prompt = true\n"  # the old servers' is off
        f"[mcp_servers.{SERVER}]\ncommand = {command}\n{entries}{more}"
    )


def failures_server(name: str, url: str, call_timeout: float, max_output_bytes: int) -> str:
    """The models file's entry of the failing server served at ``url`` (``python
    mcpfailures.py http PORT``) as ``name``, with its bounds. Over HTTP: the server is up
    before the first call, whose bound a stdio server's start (the ``mcp`` SDK's imports, a
    second and more) would take a part of."""
    return (
        f'[mcp_servers.{name}]\nurl = "{url}"\ncall_timeout = {call_timeout}\n'
        f"max_output_bytes = {max_output_bytes}\n"
    )


@contextlib.contextmanager
def hosted(
    kind: str,
    work: Path,
    logs: Path,
    *,
    keys: Optional[str] = None,
    more: str = "",
    others: Optional[dict] = None,
    args: tuple = (),
    env: Optional[dict] = None,
) -> Iterator[Hosted]:
    """The model on a server of ``kind`` behind a proxy, in ``work``: the proxy's models
    file gives it the filesystem server's tools, over a folder holding :data:`NOTES`;
    ``keys`` is the text of its keys file (none: no keys file, so every tool configured
    runs), ``others`` and ``more`` are added to its models file (see :func:`models_file`),
    ``args`` to its command line, ``env`` to its environment."""
    folder = work / "files"
    folder.mkdir()
    (folder / NOTES).write_text(CONTENT, encoding="utf-8")
    model = write_model(work / f"{MODEL}.gguf")
    name = f"hosted-{kind}-{work.name}"
    with LlamaServer(
        model, logs / f"{name}.log", kind=kind, parallel=1, ctx_size=CONTEXT
    ) as server:
        (work / "models.toml").write_text(models_file(server.url, folder, more, others))
        options = ["--config", str(work / "models.toml"), "--log-dir", str(logs)]
        if keys is not None:
            (work / "keys.toml").write_text(keys)
            options += ["--keys", str(work / "keys.toml")]
        with ProxyProcess(
            server.url, logs / f"proxy-{name}.log", args=[*options, *args], env=env
        ) as proxy:
            yield Hosted(proxy, server, folder)
