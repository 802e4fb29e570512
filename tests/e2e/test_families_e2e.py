"""Today's model families through the proxy read exactly as the server's own chat route reads
them: for each family (a tiny model with its real template, writing its own output, see
:mod:`.families`), each case (an answer, a thought, one call, two calls, the answer to a
tool's result), each client API (OpenAI chat, Anthropic Messages, OpenAI Responses, through
their official SDKs), whole and streamed, on current llama-server; and the server's own
readings on the bundled engine too, whose chat layer is another build's.

The reference is the server's own ``/v1/chat/completions``, asked directly. Where llama.cpp
itself reads a family otherwise than the family writes (``Family.llamacpp_reads``), the test
says so, and the proxy must still read it as the server does.
"""

from __future__ import annotations

import contextlib
import json

import anthropic
import openai
import pytest

from tests.processes import ProxyProcess

from .families import FAMILIES, PARIS, TOOLS, TRIGGERS, Family, Reading
from .llama_server import LlamaServer
from .marks import BUNDLED, CURRENT, only
from .scriptedmodel import write_scripted_gguf

pytestmark = pytest.mark.e2e

DIALECTS = ("openai-chat", "messages", "responses")
MAX_TOKENS = 200
THINKING = {"enable_thinking": True}  # what the Messages API's "thinking" asks for
CASES = [(family, case) for family in FAMILIES for case in family.cases]


class Refused(Reading):
    """The server (or the proxy) answered with an error instead, before the answer or during
    its stream (the proxy, which holds back what it cannot send yet, may say so before);
    ``content`` holds the error's message."""


def _refused(error) -> Refused:
    return Refused(content=str(error), finish="refused")


CHAT_LAYERS = "the server's chat layer: current llama-server's, and the bundled engine's"
THROUGH = "the proxy's reading of the server's: once, on current llama-server"


@pytest.fixture(scope="module")
def farm(kind, tmp_path_factory, logs):
    """Each family's model on a server of one kind, and the proxy in front, one family at
    a time (the tests go family by family)."""
    with Farm(kind, tmp_path_factory.mktemp(kind), logs) as running:
        yield running


class Farm:
    """Serves one family at a time: its model, its server, the proxy, and the server's own
    readings of each case (whole and streamed)."""

    def __init__(self, kind: str, folder, logs) -> None:
        self.kind = kind
        self.folder = folder
        self.logs = logs
        self.family = None
        self.stack = contextlib.ExitStack()

    def serve(self, family: Family) -> tuple:
        """``(proxy, readings)`` of ``family``, started unless it is the one served."""
        if family is not self.family:
            self.stack.close()
            self.family = None
            proxy, self.readings = self._start(family)
            self.clients = {
                "openai-chat": proxy.sdk(),
                "messages": proxy.anthropic(),
                "responses": proxy.sdk(),
            }
            self.proxy = proxy
            self.family = family
        return self.proxy, self.readings

    def _start(self, family: Family) -> tuple:
        model = write_scripted_gguf(
            self.folder / f"{family.name}.gguf",
            family.scripts(),
            family.tokens,
            family.chat_template(),
            name=family.name,
        )
        server = self.stack.enter_context(
            LlamaServer(
                model,
                self.logs / f"{family.name}-{self.kind}.log",
                kind=self.kind,
                parallel=1,
                ctx_size=8192,
            )
        )
        proxy = self.stack.enter_context(
            ProxyProcess(server.url, self.logs / f"proxy-{family.name}-{self.kind}.log")
        )
        self.server_url = server.url
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as direct:
            readings = {
                (case, stream): _chat(direct, family, case, stream)
                for case in family.cases
                for stream in (False, True)
            }
        return proxy, readings

    def __enter__(self) -> "Farm":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stack.close()


@only(CURRENT, BUNDLED, why=CHAT_LAYERS)
@pytest.mark.parametrize("family, case", CASES, ids=[f"{f.name}-{c}" for f, c in CASES])
def test_the_server_reads_each_family_as_the_family_writes(farm, family, case):
    _, readings = farm.serve(family)
    for stream in (False, True):
        reading = readings[case, stream]
        otherwise = family.llamacpp_reads.get(case)
        if otherwise is None:
            assert reading == family.expected[case]
        elif otherwise.reading is None:  # it refuses the answer, whole or streamed
            assert isinstance(reading, Refused), (family.name, case, otherwise.why, reading)
            assert "does not match the expected" in reading.content
        else:
            assert reading == otherwise.reading, (family.name, case, otherwise.why)


@only(CURRENT, why=THROUGH)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("family, case", CASES, ids=[f"{f.name}-{c}" for f, c in CASES])
def test_the_proxy_reads_every_family_as_the_server_does(farm, family, case, dialect, stream):
    proxy, readings = farm.serve(family)
    ask = {"openai-chat": _chat, "messages": _messages, "responses": _responses}[dialect]
    reading = ask(farm.clients[dialect], family, case, stream)
    print(f"{family.name} {case} {dialect} {'streamed' if stream else 'whole'}: {reading}")
    if isinstance(readings[case, stream], Refused):
        assert isinstance(reading, Refused)
        assert "127.0.0.1" not in reading.content  # the server's address stays in the log
    else:
        assert reading == readings[case, stream]
    assert "Traceback" not in proxy.log()


# -- the three client APIs, each through its official SDK ------------------------------------


def _question(case: str) -> str:
    return f"{TRIGGERS.get(case, '')} What is the weather in Paris?".strip()


def _chat(client: openai.OpenAI, family: Family, case: str, stream: bool) -> Reading:
    messages = [{"role": "user", "content": _question(case)}]
    if case == "result":
        messages = [
            {"role": "user", "content": _question("one_call")},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": family.call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps(PARIS)},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": family.call_id,
                "content": f"Sunny {TRIGGERS['result']}",
            },
        ]
    options = dict(
        model="any",
        messages=messages,
        tools=list(TOOLS),
        temperature=0,
        max_tokens=MAX_TOKENS,
        extra_body={"chat_template_kwargs": THINKING},
    )
    try:
        if not stream:
            choice = client.chat.completions.create(**options).choices[0]
            message = choice.message
            calls = tuple(
                (call.function.name, json.loads(call.function.arguments))
                for call in message.tool_calls or ()
            )
            return Reading(
                message.content or "",
                (message.model_extra or {}).get("reasoning_content") or "",
                calls,
                choice.finish_reason,
            )
        text, thoughts, calls, finish = [], [], {}, None
        for chunk in client.chat.completions.create(**options, stream=True):
            for choice in chunk.choices:
                delta = choice.delta
                text.append(delta.content or "")
                thoughts.append((delta.model_extra or {}).get("reasoning_content") or "")
                for call in delta.tool_calls or ():
                    name, arguments = calls.get(call.index, ("", ""))
                    calls[call.index] = (
                        name or (call.function.name or ""),
                        arguments + (call.function.arguments or ""),
                    )
                finish = choice.finish_reason or finish
    except openai.APIError as exc:
        return _refused(exc)
    return Reading(
        "".join(text),
        "".join(thoughts),
        tuple((name, json.loads(arguments)) for name, arguments in calls.values()),
        finish,
    )


def _messages(client: anthropic.Anthropic, family: Family, case: str, stream: bool) -> Reading:
    messages = [{"role": "user", "content": _question(case)}]
    if case == "result":
        messages = [
            {"role": "user", "content": _question("one_call")},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": family.call_id,
                        "name": "get_weather",
                        "input": PARIS,
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": family.call_id,
                        "content": f"Sunny {TRIGGERS['result']}",
                    }
                ],
            },
        ]
    tools = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"]["description"],
            "input_schema": tool["function"]["parameters"],
        }
        for tool in TOOLS
    ]
    options = dict(
        model="any",
        messages=messages,
        tools=tools,
        max_tokens=MAX_TOKENS,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"temperature": 0},
    )
    try:
        if stream:
            with client.messages.stream(**options) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**options)
    except anthropic.APIError as exc:
        return _refused(exc)
    blocks = message.content
    return Reading(
        "".join(b.text for b in blocks if b.type == "text"),
        "".join(b.thinking for b in blocks if b.type == "thinking"),
        tuple((b.name, b.input) for b in blocks if b.type == "tool_use"),
        {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}[message.stop_reason],
    )


def _responses(client: openai.OpenAI, family: Family, case: str, stream: bool) -> Reading:
    items: list = [{"role": "user", "content": _question(case)}]
    if case == "result":
        items = [
            {"role": "user", "content": _question("one_call")},
            {
                "type": "function_call",
                "call_id": family.call_id,
                "name": "get_weather",
                "arguments": json.dumps(PARIS),
            },
            {
                "type": "function_call_output",
                "call_id": family.call_id,
                "output": f"Sunny {TRIGGERS['result']}",
            },
        ]
    tools = [{"type": "function", **tool["function"]} for tool in TOOLS]
    options = dict(
        model="any",
        input=items,
        tools=tools,
        temperature=0,
        max_output_tokens=MAX_TOKENS,
        store=False,
        extra_body={"chat_template_kwargs": THINKING},
    )
    try:
        if stream:
            with client.responses.stream(**options) as events:
                if any(event.type in ("response.failed", "error") for event in events):
                    return Refused(finish="during")
                response = events.get_final_response()
        else:
            response = client.responses.create(**options)
    except openai.APIError as exc:
        return _refused(exc)
    output = response.output
    calls = tuple(
        (item.name, json.loads(item.arguments)) for item in output if item.type == "function_call"
    )
    return Reading(
        "".join(
            part.text
            for item in output
            if item.type == "message"
            for part in item.content
            if part.type == "output_text"
        ),
        "".join(
            part.text for item in output if item.type == "reasoning" for part in item.content or ()
        ),
        calls,
        "length" if response.status == "incomplete" else "tool_calls" if calls else "stop",
    )


STOPPED = [family for family in FAMILIES if family.name in ("gpt-oss", "qwen3", "mistral-nemo")]


@only(CURRENT, why=THROUGH)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("family", STOPPED, ids=[family.name for family in STOPPED])
def test_a_stop_sequence_ends_the_answer_and_is_named(farm, family, stream):
    proxy, _ = farm.serve(family)
    options = dict(
        model="any",
        max_tokens=MAX_TOKENS,
        extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "Say hello."}],
        stop_sequences=["world", "nowhere"],
    )
    with openai.OpenAI(base_url=farm.server_url + "/v1", api_key="unused") as direct:
        served = direct.chat.completions.create(
            model="any", messages=options["messages"], stop=["world"], temperature=0
        )
    if stream:
        with farm.clients["messages"].messages.stream(**options) as events:
            message = events.get_final_message()
    else:
        message = farm.clients["messages"].messages.create(**options)
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text == served.choices[0].message.content == "Hello, "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "world")
    chat = farm.clients["openai-chat"].chat.completions.create(
        model="any", messages=options["messages"], stop=["world"], temperature=0
    )
    assert (chat.choices[0].message.content, chat.choices[0].finish_reason) == ("Hello, ", "stop")


QWEN3 = next(family for family in FAMILIES if family.name == "qwen3")


@only(CURRENT, why=THROUGH)
def test_thinking_switches_reach_the_models_template(farm):
    """Off, Qwen3's template closes an empty thought in the prompt: the prompt is longer, by
    as much as the server's own count says, whichever API switched it off."""
    proxy, _ = farm.serve(QWEN3)
    messages = [{"role": "user", "content": "Say hello."}]
    with openai.OpenAI(base_url=farm.server_url + "/v1", api_key="unused") as direct:
        counts = {
            thinking: direct.chat.completions.create(
                model="any",
                messages=messages,
                max_tokens=1,
                extra_body={"chat_template_kwargs": {"enable_thinking": thinking}},
            ).usage.prompt_tokens
            for thinking in (True, False)
        }
    assert counts[False] > counts[True]
    count = farm.clients["messages"].messages.count_tokens
    assert count(model="any", messages=messages).input_tokens == counts[True]
    assert (
        count(model="any", messages=messages, thinking={"type": "disabled"}).input_tokens
        == counts[False]
    )
    chat = farm.clients["openai-chat"].chat.completions.create
    assert (
        chat(
            model="any", messages=messages, max_tokens=1, reasoning_effort="none"
        ).usage.prompt_tokens
        == counts[False]
    )
    assert (
        chat(
            model="any",
            messages=messages,
            max_tokens=1,
            extra_body={"chat_template_kwargs": {"enable_thinking": False}},
        ).usage.prompt_tokens
        == counts[False]
    )
    responses = farm.clients["responses"].responses
    assert (
        responses.input_tokens.count(
            model="any", input="Say hello.", reasoning={"effort": "none"}
        ).input_tokens
        == counts[False]
    )
