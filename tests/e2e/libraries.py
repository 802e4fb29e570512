"""The client libraries and tools ``.ci/clients.sh`` installs, run against the proxy as
programs of their own, and the served model they talk to.

Each test runs its client as a subprocess (a small script of ``tests/e2e/clients/`` under
Node or under the client's own virtual environment), through a :class:`.tap.Tap`, in front of
Qwen3's scripted model (see :mod:`.families`): asked plainly it answers
:data:`~.families.ANSWER`; asked with :data:`ONE_CALL` it calls ``get_weather`` for Paris; once
a result with :data:`RESULT` is in its prompt it answers :data:`~.families.RESULT_ANSWER`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
from typing import Iterator, Optional

from tests.processes import ProxyProcess

from .agents import agents_folder
from .families import FAMILIES, TOOLS, TRIGGERS
from .llama_server import LlamaServer
from .scriptedmodel import write_scripted_gguf
from .tap import Tap

CLIENTS_ENV_VAR = "OAI_PROXY_CLIENTS"
SCRIPTS = pathlib.Path(__file__).parent / "clients"
QWEN3 = next(family for family in FAMILIES if family.name == "qwen3")
MODEL = "qwen3"
KEY = "sk-library"
ONE_CALL = f"{TRIGGERS['one_call']} What is the weather in Paris?"
RESULT = f"Sunny {TRIGGERS['result']}"
WEATHER = TOOLS[0]
LITELLM_PROXY = (
    "import sys; from litellm_cli.main import proxy_server; sys.argv[0] = 'litellm'; "
    "sys.exit(proxy_server())"
)


def clients_folder() -> pathlib.Path:
    """Where ``.ci/clients.sh`` installs the libraries and tools."""
    return pathlib.Path(
        os.environ.get(CLIENTS_ENV_VAR) or pathlib.Path.home() / ".cache" / "oai-proxy" / "clients"
    )


def python_of(client: str) -> pathlib.Path:
    """The Python of ``client``'s own virtual environment."""
    path = clients_folder() / client / "bin" / "python"
    if not path.exists():
        raise FileNotFoundError(f"no {client} at {path}: run bash .ci/clients.sh")
    return path


def litellm_proxy() -> list:
    """The command that starts LiteLLM's proxy (its options follow): its ``litellm`` program,
    run by the Python of LiteLLM's own virtual environment."""
    return [str(python_of("litellm")), "-c", LITELLM_PROXY]


def program_of(client: str, name: str) -> pathlib.Path:
    """A command ``client``'s virtual environment installs (``llm``, ``aider``)."""
    path = clients_folder() / client / "bin" / name
    if not path.exists():
        raise FileNotFoundError(f"no {name} at {path}: run bash .ci/clients.sh")
    return path


def run(
    command: list,
    cwd: pathlib.Path,
    env: Optional[dict] = None,
    home: Optional[pathlib.Path] = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run a client: its own HOME (``cwd/home`` unless given), nothing on stdin, no proxy
    settings of this machine's."""
    home = home or cwd / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **(env or {})},
    )


def node(script: str, tap: Tap, cwd: pathlib.Path) -> dict:
    """Run ``tests/e2e/clients/<script>`` under Node, with the npm packages of
    ``.ci/clients.sh`` and ``.ci/agents.sh``; return the JSON it prints last."""
    modules = [clients_folder() / "node" / "node_modules", agents_folder() / "node_modules"]
    return finished(
        run(
            ["node", str(SCRIPTS / script), json.dumps(arguments(tap))],
            cwd,
            {"NODE_PATH": os.pathsep.join(map(str, modules))},
        )
    )


def python(
    client: str, script: str, tap: Tap, cwd: pathlib.Path, env: Optional[dict] = None
) -> dict:
    """Run ``tests/e2e/clients/<script>`` with ``client``'s Python; return the JSON it prints
    last."""
    return finished(
        run([str(python_of(client)), str(SCRIPTS / script), json.dumps(arguments(tap))], cwd, env)
    )


def arguments(tap: Tap) -> dict:
    """What every client script is told: where the proxy is, the key, the model, the words
    that make the model call its tool and then answer, the tool."""
    return {
        "url": tap.url,
        "key": KEY,
        "model": MODEL,
        "question": ONE_CALL,
        "result": RESULT,
        "tool": WEATHER["function"],
    }


def finished(result: subprocess.CompletedProcess) -> dict:
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def served(
    engine: str, folder: pathlib.Path, logs: pathlib.Path, name: str, scripts: Optional[list] = None
) -> Iterator[tuple]:
    """Qwen3's scripted model (with Qwen3's scripts, unless given others) on a server of
    ``engine`` ("llamacpp" or "bundled"), behind the proxy with :data:`KEY` and behind a
    tap: ``(proxy, tap)``."""
    model = write_scripted_gguf(
        folder / "qwen3.gguf",
        scripts or QWEN3.scripts(),
        QWEN3.tokens,
        QWEN3.chat_template(),
        name=MODEL,
    )
    with LlamaServer(
        model, logs / f"{name}-{engine}.log", kind=engine, parallel=1, ctx_size=8192
    ) as server:
        (folder / "models.toml").write_text(f'[models.{MODEL}]\nupstreams = ["{server.url}"]\n')
        with (
            ProxyProcess(
                server.url,
                logs / f"proxy-{name}-{engine}.log",
                args=["--config", str(folder / "models.toml"), "--api-key", KEY],
            ) as proxy,
            Tap(proxy.url) as tap,
        ):
            yield proxy, tap


def keyed(tap: Tap, keyless: tuple = ()) -> list:
    """Every request the client made carried the key (the proxy takes no other) and was
    answered, but those to the ``keyless`` paths that came without it: those were refused
    (401). Return those."""
    assert tap.requests
    refused = []
    for tapped in tap.requests:
        headers = {name.lower(): value for name, value in tapped.headers.items()}
        if tapped.path in keyless and "authorization" not in headers:
            assert tapped.status == 401, tapped
            refused.append(tapped)
            continue
        assert headers.get("authorization") == f"Bearer {KEY}", tapped
        assert tapped.status == 200, tapped
    return refused


def tool_round_trip(tap: Tap, path: str) -> list:
    """The requests to ``path`` offered the tool, and one brought its result back after the
    model's call: return them."""
    offered = [
        tapped
        for tapped in tap.to(path)
        if tapped.method == "POST" and "get_weather" in names_of(tapped.tools)
    ]
    assert offered, tap.paths()
    answered = [
        tapped
        for tapped in offered
        if any(
            message.get("role") == "tool" and TRIGGERS["result"] in text_of(message)
            for message in tapped.body["messages"]
        )
    ]
    assert answered, [tapped.body["messages"] for tapped in offered]
    return offered


def names_of(tools: list) -> list:
    return [(tool.get("function") or tool).get("name") for tool in tools]


def text_of(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content
