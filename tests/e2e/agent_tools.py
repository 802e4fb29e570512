"""What the e2e tests of the coding agents share: a model of a family agents run today that
calls the agent's own tool, served by a server of one kind behind the proxy (with a key) and a
:class:`~.tap.Tap`, and what the tap must have seen of a tool loop.

The model (see :mod:`.scriptedmodel`) first calls the tool, in its family's syntax; once the
tool's result is in its prompt (the template's result marker: gpt-oss's `` to=assistant``,
Qwen3-Coder's ``<tool_response>``), it answers :data:`ANSWER` and stops.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Iterator

from tests.processes import ProxyProcess

from .families import FAMILIES, Family
from .llama_server import LlamaServer
from .scriptedmodel import Script, write_scripted_gguf
from .tap import Tap, Tapped

CONTEXT = 131072
ANSWER = "I wrote notes.txt for you."
COMMAND = "echo hello from the model > notes.txt"
WRITTEN = "hello from the model\n"
CHAT = "/v1/chat/completions"


def gpt_oss_call(name: str, arguments: dict) -> str:
    return (
        "<|channel|>analysis<|message|>I will write the file.<|end|><|start|>assistant"
        f"<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>"
        f"{json.dumps(arguments)}<|call|>"
    )


def qwen3_coder_call(name: str, arguments: dict) -> str:
    parameters = "".join(
        f"<parameter={key}>\n{value}\n</parameter>\n" for key, value in arguments.items()
    )
    return f"<tool_call>\n<function={name}>\n{parameters}</function>\n</tool_call>"


# family: (how it writes a call, how it writes an answer, what marks a tool's result)
AGENT_FAMILIES = {
    "gpt-oss": (gpt_oss_call, f"<|channel|>final<|message|>{ANSWER}", " to=assistant"),
    "qwen3-coder": (qwen3_coder_call, ANSWER, "<tool_response>"),
}


def family(name: str) -> Family:
    return next(f for f in FAMILIES if f.name == name)


@contextlib.contextmanager
def served(
    kind: str,
    family_name: str,
    tool: str,
    arguments: dict,
    folder: pathlib.Path,
    logs: pathlib.Path,
    key: str,
) -> Iterator[tuple]:
    """``(proxy, tap)``: a model of ``family_name`` that calls ``tool`` with ``arguments``
    and then answers, on a server of ``kind`` behind the proxy (which
    wants ``key``) and a tap."""
    write_call, answer, marker = AGENT_FAMILIES[family_name]
    scripts = [Script(write_call(tool, arguments)), Script(answer, trigger=marker)]
    model = write_scripted_gguf(
        folder / f"{family_name}-{tool}.gguf",
        scripts,
        family(family_name).tokens,
        family(family_name).chat_template(),
        name=family_name,
    )
    name = f"{kind}-{family_name}-{tool}"
    with (
        LlamaServer(
            model, logs / f"tools-{name}.log", kind=kind, parallel=1, ctx_size=CONTEXT
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-tools-{name}.log",
            args=["--api-key", key, "--upstream-timeout", "600"],
        ) as proxy,
        Tap(proxy.url) as tap,
    ):
        yield proxy, tap


def assert_ran_the_call(result, work: pathlib.Path, proxy, tap: Tap, tool: str, key: str) -> None:
    """An agent's run (``result``) in which the model's call to ``tool`` wrote notes.txt in
    ``work`` and the agent printed the model's answer, with :func:`assert_tool_loop`'s
    traffic and no traceback in the proxy's log."""
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (work / "notes.txt").read_text() == WRITTEN
    assert ANSWER in result.stdout
    assert_tool_loop(tap, tool, key)
    assert "Traceback" not in proxy.log()


def header(tapped: Tapped, name: str):
    """A request's header ``name``, however the client wrote the name."""
    return next(
        (value for key, value in tapped.headers.items() if key.lower() == name.lower()), None
    )


def tool_names(tapped: Tapped) -> list:
    return [tool["function"]["name"] for tool in tapped.tools if tool.get("type") == "function"]


def assert_tool_loop(tap: Tap, tool: str, key: str) -> None:
    """What the tap saw of a run in which the model called ``tool`` once: every request had
    the key, every chat streamed and was answered 200, asking for no hosted tool; a chat
    offered ``tool``; and a later chat carried the model's call back with the tool's result
    for it."""
    for tapped in tap.requests:  # shown when the test fails
        print(
            tapped.method,
            tapped.path,
            tapped.status,
            tapped.streamed,
            tool_names(tapped),
            [message.get("role") for message in (tapped.body or {}).get("messages") or ()]
            if isinstance(tapped.body, dict)
            else "",
        )
    assert tap.requests, "the agent sent nothing to the proxy"
    for tapped in tap.requests:
        assert header(tapped, "Authorization") == f"Bearer {key}", tapped.path
        assert tapped.status == 200, (tapped.method, tapped.path, tapped.status)
    chats = tap.to(CHAT)
    assert chats and all(chat.streamed for chat in chats)
    # no hosted tool asked for: every tool offered is the agent's own, run by the agent
    assert all(tool.get("type") == "function" for chat in chats for tool in chat.tools)
    assert not any("web_search_options" in chat.body for chat in chats)
    offering = [index for index, chat in enumerate(chats) if tool in tool_names(chat)]
    assert offering, f"no chat offered {tool}: {[tool_names(chat) for chat in chats]}"
    answered = [chat for chat in chats[offering[0] + 1 :] if tool_result(chat, tool)]
    assert answered, "no later chat carried the tool's result"


def tool_result(chat: Tapped, tool: str) -> bool:
    """Whether ``chat`` carries an assistant's call to ``tool`` and a ``tool`` message that
    answers that call."""
    messages = chat.body.get("messages") or []
    calls = {
        call["id"]
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or ()
        if call["function"]["name"] == tool
    }
    return any(
        message.get("role") == "tool" and message.get("tool_call_id") in calls
        for message in messages
    )
