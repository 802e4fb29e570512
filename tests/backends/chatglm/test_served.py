"""The proxy as a process with ``--backend chatglm``: the real chatglm.cpp extension serving
the tiny models, through the openai SDK (the chatglm backend's e2e tier)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from pathlib import Path

import openai
import pytest
import requests

from tests.backends.chatglm.conftest import ENDLESS_LENGTH, REPLY
from tests.images import data_uri
from tests.polling import wait_for
from tests.processes import ROOT, ProxyProcess, free_port

pytestmark = pytest.mark.e2e

UNUSED_UPSTREAM = "http://127.0.0.1:9"  # ProxyProcess always passes --llama-api; chatglm ignores it
CHAT = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def chatglm_proxy(path: Path, log: Path, *args: str) -> ProxyProcess:
    return ProxyProcess(
        UNUSED_UPSTREAM, log, args=["--backend", "chatglm", "--model", str(path), *args]
    )


@pytest.fixture(scope="module", params=["waitress", "gunicorn"])
def glm4(request, models, tmp_path_factory):
    log = tmp_path_factory.mktemp("glm4") / "proxy.log"
    with chatglm_proxy(models.reply, log, "--server", request.param) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def chatglm3(models, tmp_path_factory):
    with chatglm_proxy(models.tool, tmp_path_factory.mktemp("chatglm3") / "proxy.log") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def endless(models, tmp_path_factory):
    log = tmp_path_factory.mktemp("endless") / "proxy.log"
    with chatglm_proxy(
        models.endless,
        log,
        "--max-queue",
        "1",
        "--max-length",
        str(ENDLESS_LENGTH),
        "--max-context-length",
        "1024",
    ) as proxy:
        yield proxy


def test_chat(glm4):
    client = glm4.sdk()
    answer = client.chat.completions.create(model="tiny", messages=CHAT)
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == 8 and answer.id.startswith("chatcmpl-")
    assert [m.id for m in client.models.list()] == ["tiny-glm4.bin"]


def test_an_image_is_a_400_naming_the_field_and_the_model(glm4):
    with pytest.raises(openai.BadRequestError) as caught:
        glm4.sdk().chat.completions.create(
            model="glm",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": data_uri()}},
                    ],
                }
            ],
        )
    assert caught.value.body["param"] == "messages[0].content[1].image_url.url"
    assert "'glm' cannot see images" in caught.value.body["message"]


def test_audio_is_a_400_naming_the_field_and_the_model(glm4):
    wav = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(16)).decode()
    with pytest.raises(openai.BadRequestError) as caught:
        glm4.sdk().chat.completions.create(model="glm", messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
        ]}])  # fmt: skip
    assert caught.value.body["param"] == "messages[0].content[0].input_audio.data"
    assert "'glm' cannot hear audio" in caught.value.body["message"]


def test_chat_stream(glm4):
    chunks = list(
        glm4.sdk().chat.completions.create(
            model="tiny", messages=CHAT, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [reason for reason in finishes if reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8
    assert len({c.id for c in chunks}) == 1


def test_completions_and_stop_words(glm4):
    client = glm4.sdk()
    answer = client.completions.create(model="tiny", prompt="Once", max_tokens=3)
    choice = answer.choices[0]
    assert (choice.text, choice.finish_reason) == ("Hello from tiny", "length")
    streamed = client.chat.completions.create(
        model="tiny", messages=CHAT, stream=True, stop=["m ti"]
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == "Hello fro"


def test_tool_call(chatglm3):
    answer = chatglm3.sdk().chat.completions.create(model="tiny", messages=CHAT, tools=TOOLS)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}


def test_streamed_tool_call_and_its_result(chatglm3):
    client = chatglm3.sdk()
    chunks = list(
        client.chat.completions.create(model="tiny", messages=CHAT, tools=TOOLS, stream=True)
    )
    deltas = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    calls = [delta for delta in deltas if delta.id]  # the first delta of each call
    assert [call.function.name for call in calls] == ["get_weather"]
    assert [delta.index for delta in deltas] == [0, 0]
    arguments = "".join(delta.function.arguments for delta in deltas)
    assert json.loads(arguments) == {"city": "Paris", "days": 3}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    history = CHAT + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": calls[0].id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 21}'},
    ]
    again = client.chat.completions.create(model="tiny", messages=history, tools=TOOLS)
    assert again.choices[0].finish_reason == "tool_calls"


def content_arrivals(proxy: ProxyProcess, max_tokens: int, name: str, arrived: list) -> None:
    """Stream a chat and add ``name`` to ``arrived`` as each piece of content arrives."""
    # a long wait, not a bound: on a machine the suite's other workers keep busy, hundreds
    # of tokens streamed one after another can take minutes
    stream = proxy.sdk(timeout=600).chat.completions.create(
        model="tiny", messages=CHAT, stream=True, max_tokens=max_tokens
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrived.append(name)


MESSAGES_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": TOOLS[0]["function"]["parameters"],
}


def test_messages_whole_streamed_and_counted(glm4):
    """Anthropic's Messages API on the in-process model, through the anthropic SDK."""
    client = glm4.anthropic()
    whole = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=CHAT)
    assert [(block.type, block.text) for block in whole.content] == [("text", REPLY)]
    assert whole.stop_reason == "end_turn" and whole.usage.output_tokens == 8
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=CHAT) as stream:
        assert "".join(stream.text_stream) == REPLY
        final = stream.get_final_message()
    assert final.model_dump(exclude={"id"}) == whole.model_dump(exclude={"id"})
    counted = client.messages.count_tokens(model="tiny", messages=CHAT)
    assert counted.input_tokens == whole.usage.input_tokens
    cut = client.messages.create(model="tiny", max_tokens=3, messages=CHAT)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3


def test_messages_tool_use_and_its_result(chatglm3):
    client = chatglm3.anthropic()
    first = client.messages.create(
        model="tiny", max_tokens=64, messages=CHAT, tools=[MESSAGES_TOOL]
    )
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert (call.type, call.name, call.input) == (
        "tool_use",
        "get_weather",
        {"city": "Paris", "days": 3},
    )
    with client.messages.stream(
        model="tiny", max_tokens=64, messages=CHAT, tools=[MESSAGES_TOOL]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [
        ("tool_use", "get_weather", {"city": "Paris", "days": 3})
    ]
    history = CHAT + [
        {"role": "assistant", "content": [call.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    again = client.messages.create(
        model="tiny", max_tokens=64, messages=history, tools=[MESSAGES_TOOL]
    )
    assert again.content and again.stop_reason in ("tool_use", "end_turn")


RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": TOOLS[0]["function"]["parameters"],
    "strict": False,
}


def test_responses_whole_streamed_and_counted(glm4):
    """OpenAI's Responses API on the in-process model, through the openai SDK."""
    client = glm4.sdk()
    whole = client.responses.create(model="tiny", input="hi")
    assert whole.output_text == REPLY and whole.status == "completed"
    with client.responses.stream(model="tiny", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == REPLY and final.usage.output_tokens == whole.usage.output_tokens
    counted = client.responses.input_tokens.count(model="tiny", input="hi")
    assert counted.input_tokens == whole.usage.input_tokens
    assert (
        client.responses.create(model="tiny", input="hi", max_output_tokens=3).status
        == "incomplete"
    )


def test_responses_function_call_and_its_output(chatglm3):
    client = chatglm3.sdk()
    first = client.responses.create(model="tiny", input="hi", tools=[RESPONSES_TOOL])
    (call,) = first.output
    assert (call.type, call.name, json.loads(call.arguments)) == (
        "function_call",
        "get_weather",
        {"city": "Paris", "days": 3},
    )
    again = client.responses.create(
        model="tiny",
        previous_response_id=first.id,
        tools=[RESPONSES_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert again.status == "completed" and again.output


TURN = 100  # tokens each of two streams asks for: two at once would alternate throughout


def test_concurrent_requests_are_serialized(endless):
    """Taking turns, one stream's pieces arrive after the other's, but for a few around the
    turn (delivery jitter); interleaved, the two would alternate from start to end."""
    arrived = []  # whose each piece of content was, in the order they arrived
    names = ("first", "second")
    threads = [
        threading.Thread(target=content_arrivals, args=(endless, TURN, name, arrived))
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(1200)
    assert arrived.count("first") == arrived.count("second") == TURN
    starts = [arrived.index(name) for name in names]
    ends = [len(arrived) - 1 - arrived[::-1].index(name) for name in names]
    both = arrived[max(starts) : min(ends) + 1]  # the pieces that came while both were under way
    assert len(both) < TURN / 2, "both generations ran at the same time"


def health(proxy: ProxyProcess) -> dict:
    return proxy.health(timeout=5)


def test_full_queue_then_a_disconnect_frees_the_model(endless):
    waiting_text = []
    with requests.post(
        endless.url + "/v1/chat/completions",
        stream=True,
        timeout=30,
        json={"messages": CHAT, "stream": True, "max_tokens": ENDLESS_LENGTH},
    ) as holder:
        lines = holder.iter_lines()  # kept: dropping it closes the connection
        assert next(lines).startswith(b"data: ")
        waiter = threading.Thread(
            target=lambda: waiting_text.append(
                endless.sdk()
                .chat.completions.create(model="tiny", messages=CHAT, max_tokens=5)
                .choices[0]
                .message.content
            )
        )
        waiter.start()
        wait_for(lambda: health(endless)["queued"] == 1, "the request queueing", timeout=60)

        # /health answered while the generation held the model: after it, the queue is still
        # full (the 503 below), so the generation had not ended (the timeout detects a hang)
        assert endless.health(timeout=60)["in_flight"] == 1
        with pytest.raises(openai.InternalServerError) as info:
            endless.sdk().chat.completions.create(model="tiny", messages=CHAT)
        assert info.value.status_code == 503
        assert int(info.value.response.headers["Retry-After"]) > 0
    # the client went away mid-stream: the waiting request gets the model
    waiter.join(120)
    assert waiting_text == ["la la la la la"]
    wait_for(lambda: health(endless)["in_flight"] == 0, "the model coming free", timeout=60)
    again = endless.sdk().chat.completions.create(model="tiny", messages=CHAT, max_tokens=2)
    assert again.choices[0].message.content == "la la"


@pytest.mark.parametrize(
    "damage, message",
    [
        (None, "No such file or directory"),
        (lambda path: path.parent, "Is a directory"),
        (lambda path: path.write_bytes(path.read_bytes()[:-1000]) and path, "truncated"),
        (lambda path: path.write_bytes(b"GGUF" + path.read_bytes()[4:]) and path, "GGUF"),
        (lambda path: path.write_text("not a model") and path, "'ggml' magic"),
    ],
    ids=["missing", "directory", "truncated", "gguf", "text"],
)
def test_a_bad_model_file_is_a_clean_start_up_error(damage, message, models, tmp_path):
    path = tmp_path / "model.bin"
    if damage is not None:
        path.write_bytes(Path(models.reply).read_bytes())
        path = damage(path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy",
            "--backend",
            "chatglm",
            "--model",
            str(path),
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "oai-proxy: " in result.stderr and str(path) in result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_more_than_one_worker_is_refused(models):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "proxy",
            "--backend",
            "chatglm",
            "--model",
            str(models.reply),
            "--server",
            "gunicorn",
            "--workers",
            "2",
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--workers 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_ollamas_client_chats_generates_and_lists(glm4):
    client = glm4.ollama()
    (listed,) = client.list().models
    assert listed.model == "tiny-glm4.bin:latest" and listed.details.family == "chatglm"
    shown = client.show(listed.model)
    assert shown.capabilities == ["completion", "tools"]  # GLM-4 has its observation role
    assert shown.modelinfo["chatglm.context_length"] > 0
    whole = client.chat(model=listed.model, messages=CHAT, stream=False)
    assert whole.message.content == REPLY and whole.done_reason == "stop"
    assert whole.eval_count == 8 and whole.eval_duration > 0 and whole.prompt_eval_duration > 0
    streamed = list(client.generate(model="tiny-glm4.bin", prompt="hi", stream=True))
    assert "".join(chunk.response for chunk in streamed) == REPLY
    assert streamed[-1].done and streamed[-1].eval_count == 8


def test_ollamas_client_calls_a_tool_and_reads_its_result(chatglm3):
    client = chatglm3.ollama()
    assert "tools" in client.show("tiny-chatglm3.bin").capabilities
    first = client.chat(model="tiny-chatglm3.bin", messages=CHAT, tools=TOOLS, stream=False)
    (call,) = first.message.tool_calls
    assert (call.function.name, dict(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris", "days": 3},
    )
    streamed = [
        call
        for chunk in client.chat(model="tiny-chatglm3.bin", messages=CHAT, tools=TOOLS, stream=True)
        for call in chunk.message.tool_calls or ()
    ]
    assert [(c.function.name, dict(c.function.arguments)) for c in streamed] == [
        ("get_weather", {"city": "Paris", "days": 3})
    ]
    answered = client.chat(
        model="tiny-chatglm3.bin",
        tools=TOOLS,
        stream=False,
        messages=[
            *CHAT,
            first.message,
            {"role": "tool", "tool_name": "get_weather", "content": '{"temp": 21}'},
        ],
    )
    assert answered.done and answered.message.role == "assistant"
