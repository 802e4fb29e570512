"""The chatglm backend in-process, on the real chatglm.cpp extension and the tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from proxy.app import create_app
from proxy.backends.chatglm import translation
from proxy.backends.chatglm.backend import ChatGLMBackend, load_backend
from proxy.backends.chatglm.model import UNLIMITED
from proxy.config.settings import Settings
from proxy.core.errors import InvalidRequestError, UpstreamUnavailableError
from proxy.core.types import GenerationRequest, Message, Sampling
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.backends.chatglm.conftest import CHATGLM2_REPLY, EVIL_CALL, REPLY
from tests.processes import ROOT

HI = (Message("user", "hi"),)
TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
)


def backend(path, **settings):
    return load_backend(Settings.of(backend="chatglm", model=str(path), **settings))


@pytest.fixture(scope="module")
def glm4(models):
    return backend(models.reply)


@pytest.fixture(scope="module")
def endless(models):
    return backend(models.endless, max_length=512, max_context_length=64)


@pytest.fixture(scope="module")
def chatglm3(models):
    return backend(models.tool)


def chat(**fields) -> GenerationRequest:
    return GenerationRequest(**{"messages": HI, **fields})


def streamed(backend, request):
    chunks = list(backend.stream(request))
    assert all(c.finish_reason is None for c in chunks[:-1]) and chunks[-1].finish_reason
    return "".join(c.text for c in chunks), chunks


def test_chat(glm4):
    answer = glm4.complete(chat())
    assert (answer.text, answer.finish_reason, answer.tool_calls) == (REPLY, "stop", ())
    prompt = glm4.model.chat_prompt(translation.turns(HI), UNLIMITED)
    assert answer.usage.prompt_tokens == len(prompt)
    assert answer.usage.completion_tokens == 8  # the reply's tokens, not the end of the turn
    assert not answer.truncated


def test_stream(glm4):
    text, chunks = streamed(glm4, chat())
    assert text == REPLY
    assert [c.text for c in chunks[:-1]] == ["Hello", " from", " tiny", " GLM", " 世", "界", "!!"]
    assert chunks[-1].usage == glm4.complete(chat()).usage


def test_completion_from_a_raw_prompt(glm4):
    answer = glm4.complete(GenerationRequest(prompt="Once upon a time", max_tokens=3))
    assert (answer.text, answer.finish_reason) == ("Hello from tiny", "length")
    prompt_tokens = len(glm4.tokenize("Once upon a time")) + 2  # [gMASK] <sop>
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, 3)
    text, _ = streamed(glm4, GenerationRequest(prompt="Once upon a time"))
    assert text == REPLY


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(temperature=0),
        Sampling(temperature=2, top_p=1, top_k=3, repeat_penalty=1.5),
        Sampling(top_p=0),
        Sampling(presence_penalty=1, frequency_penalty=-1, seed=7, min_p=0.5),
    ],
    ids=["greedy", "hot", "top-p-0", "ignored"],
)
def test_sampling_options_reach_the_model(glm4, sampling):
    assert glm4.complete(chat(sampling=sampling)).text == REPLY


def test_max_tokens_is_a_limit_on_new_tokens(endless):
    answer = endless.complete(chat(max_tokens=5))
    assert (answer.text, answer.finish_reason) == ("la la la la la", "length")
    assert answer.usage.completion_tokens == 5


def test_max_tokens_is_clamped_to_the_context(endless):
    answer = endless.complete(chat(max_tokens=10**6))
    assert answer.finish_reason == "length"
    assert answer.usage.total_tokens == 512


@pytest.mark.parametrize(
    "stop, expected",
    [
        ([" tiny"], "Hello from"),
        (["m ti"], "Hello fro"),
        (["世"], "Hello from tiny GLM "),
        (["!!", "GLM"], "Hello from tiny "),
        (["absent"], REPLY),
    ],
    ids=["word", "across-tokens", "inside-a-split-character", "earliest", "absent"],
)
def test_stop_words_never_reach_the_client(glm4, stop, expected):
    answer = glm4.complete(chat(stop=tuple(stop)))
    assert answer.text == expected
    assert answer.finish_reason == "stop"
    shown = ""
    for chunk in glm4.stream(chat(stop=tuple(stop))):
        shown += chunk.text
        assert expected.startswith(shown)
    assert shown == expected


def test_a_stop_word_stops_the_generation(endless):
    answer = endless.complete(chat(stop=(" la la",), max_tokens=100))
    assert (answer.text, answer.finish_reason) == ("la", "stop")
    assert answer.usage.completion_tokens == 3


def test_a_long_prompt_loses_its_oldest_tokens(endless):
    answer = endless.complete(
        GenerationRequest(messages=(Message("user", "word " * 500),), max_tokens=3)
    )
    assert answer.truncated and answer.usage.prompt_tokens == 64
    assert answer.text == "la la la"


def test_tokenize_and_detokenize(glm4):
    text = "Hello 世界, tiny GLM!"
    tokens = glm4.tokenize(text)
    assert "".join(piece for _, piece in tokens) == text
    ids = [token for token, _ in tokens]
    assert ids[0] == 256 and glm4.detokenize(ids) == text  # "Hello" is a whole token
    for bad in ([-1], [10**9], [1, 2, 99999]):
        with pytest.raises(InvalidRequestError):
            glm4.detokenize(bad)


def test_models_and_health(glm4, models):
    assert [m.id for m in glm4.models()] == ["tiny-glm4.bin"]
    assert backend(models.reply, model_name="glm-4-tiny").models()[0].id == "glm-4-tiny"
    health = glm4.probe()
    assert health.ok and health.detail["model_type"] == "GLM-4"
    assert (health.detail["in_flight"], health.detail["queued"]) == (0, 0)


# -- tools -------------------------------------------------------------------------------


def test_tools_reach_the_model_in_a_system_message(chatglm3):
    prompt = chatglm3.model.chat_prompt(translation.turns(HI, TOOLS), UNLIMITED)
    text = chatglm3.model.decode(prompt)
    assert translation.TOOLS_PREAMBLE in text and '"name": "get_weather"' in text
    with_tools = chatglm3.complete(chat(tools=TOOLS)).usage.prompt_tokens
    assert with_tools == len(prompt) > chatglm3.complete(chat()).usage.prompt_tokens


def test_a_tool_call(chatglm3):
    answer = chatglm3.complete(chat(tools=TOOLS))
    assert (answer.text, answer.finish_reason) == ("", "tool_calls")
    (call,) = answer.tool_calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "days": 3}


def test_a_streamed_tool_call(chatglm3):
    text, chunks = streamed(chatglm3, chat(tools=TOOLS))
    assert text == ""
    assert chunks[-1].finish_reason == "tool_calls"
    assert json.loads(chunks[-1].tool_calls[0].arguments) == {"city": "Paris", "days": 3}


def test_without_tools_a_tool_call_is_text(chatglm3):
    answer = chatglm3.complete(chat())
    assert answer.text == "get_weather\n```python\ntool_call(city='Paris', days=3)\n```"
    assert (answer.finish_reason, answer.tool_calls) == ("stop", ())


def test_an_evil_tool_call_is_a_plain_string(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    answer = backend(models.evil).complete(chat(tools=TOOLS))
    assert answer.finish_reason == "tool_calls"
    assert json.loads(answer.tool_calls[0].arguments) == EVIL_CALL[2].strip()
    assert not (tmp_path / "pwned").exists()


def test_tools_with_a_plain_reply_still_stream(glm4):
    text, chunks = streamed(glm4, chat(tools=TOOLS))
    assert text == REPLY and len(chunks) > 2
    assert chunks[-1].finish_reason == "stop"


def test_chatglm2_takes_user_and_assistant_turns_only(models):
    chatglm2 = backend(models.chatglm2)
    answer = chatglm2.complete(GenerationRequest(messages=(Message("system", "Be nice."),) + HI))
    assert (answer.text, answer.finish_reason) == ("".join(CHATGLM2_REPLY), "stop")
    with pytest.raises(InvalidRequestError) as info:
        chatglm2.complete(GenerationRequest(messages=HI + HI))
    assert info.value.param == "messages" and "ChatGLM2" in info.value.message
    with pytest.raises(InvalidRequestError) as info:
        chatglm2.complete(chat(tools=TOOLS))
    assert info.value.param == "tools"


def test_a_gap_to_fill_is_refused_by_name(glm4):
    gap = GenerationRequest(prompt="def add(a, b):", suffix="    return c")
    for ask in (glm4.complete, lambda request: list(glm4.stream(request))):
        with pytest.raises(InvalidRequestError) as info:
            ask(gap)
        assert info.value.param == "suffix" and "fill-in-the-middle" in info.value.message


# -- the API over the real backend -------------------------------------------------------


def test_openai_extras_do_not_reach_the_native_code(glm4, runtime):
    client = create_app(Settings(), runtime, backend=glm4).test_client()
    body = {
        "messages": [
            {"role": "system", "content": "Be nice.", "name": "rules"},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "text", "text": "\u4e16\x00"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 20}'},
            {"role": "user", "content": "and now?"},
        ],
        "tools": list(TOOLS),
        "tool_choice": "auto",
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.json
    assert response.json["choices"][0]["message"]["content"] == REPLY


def test_glm_api_routes(glm4, runtime):
    client = create_app(Settings(), runtime, backend=glm4).test_client()
    answer = client.post("/chat", json={"prompt": "hi", "history": [["a", "b"]]}).json
    assert (answer["content"], answer["completion_tokens"]) == (REPLY, 8)
    tokens = client.post("/tokenize", json={"prompt": "Hello 世界"}).json
    assert "".join(tokens["tokens"]) == "Hello 世界"
    assert client.post("/v1/detokenize", json={"tokens": tokens["tokenIds"]}).json == {
        "prompt": "Hello 世界"
    }
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 501


def test_options_it_cannot_honour_are_refused(glm4, runtime):
    client = create_app(Settings(), runtime, backend=glm4).test_client()
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "logprobs": True},
    )
    assert response.status_code == 501 and response.json["error"]["param"] == "logprobs"
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "repeat_penalty": 0},
    )
    assert response.status_code == 400 and response.json["error"]["param"] == "repeat_penalty"


# -- one generation at a time ------------------------------------------------------------


def test_an_open_stream_holds_the_model(models):
    busy = backend(models.reply, max_queue=0)
    stream = busy.stream(chat())
    assert next(stream).text == "Hello"
    assert busy.probe().detail["in_flight"] == 1
    with pytest.raises(UpstreamUnavailableError) as info:
        busy.complete(chat())
    assert info.value.retry_after
    stream.close()  # the client went away
    assert busy.probe().detail["in_flight"] == 0
    assert busy.complete(chat()).text == REPLY


def test_a_stream_closed_from_another_thread_frees_the_model(models):
    busy = backend(models.reply, max_queue=0)
    stream = busy.stream(chat())
    next(stream)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(stream.close).result(5)
    assert busy.complete(chat()).text == REPLY


class Watched:
    """The real model, counting how many generations run at once."""

    def __init__(self, model) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, *args):
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            for token in self._model.generate(*args):
                time.sleep(0.0001)  # invite the other threads in
                yield token
        finally:
            with self._lock:
                self.running -= 1


def test_concurrent_requests_take_turns(endless):
    watched = Watched(endless.model)
    serial = ChatGLMBackend(
        watched,
        Admission("the model", SlotCount(configured=1), max_queue=8, queue_timeout=60),
        max_context_length=64,
    )
    lengths = [50, 10, 40, 20, 30, 60]
    with ThreadPoolExecutor(len(lengths)) as pool:
        texts = list(pool.map(lambda n: serial.complete(chat(max_tokens=n)).text, lengths))
    assert texts == [" ".join(["la"] * n) for n in lengths]
    assert watched.most == 1


def test_health_reports_a_running_generation(endless):
    with closing(endless.stream(chat(max_tokens=100))) as chunks:
        next(chunks)
        assert endless.probe().detail["in_flight"] == 1
    assert endless.probe().detail["in_flight"] == 0


# -- start-up errors and crash safety, in subprocesses -----------------------------------


def run_python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``code`` run by a Python of its own; the timeout is a long wait, not a bound (on a
    machine the suite's other workers keep busy, chatglm.cpp's threads wait their turn)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_a_long_answer_after_a_short_prompt_fills_the_cache_safely(models):
    """Short prompt, then generation to the last slot: past chatglm.cpp heap and KV limits
    (1,024 tokens corrupt its heap without the buffer reserved at load; 512 do not)."""
    result = run_python(f"""
from proxy.backends.chatglm.backend import load_backend
from proxy.config.settings import Settings
from proxy.core.types import GenerationRequest, Message
backend = load_backend(Settings.of(backend="chatglm", model={str(models.endless)!r},
                                   max_length=1024, max_context_length=16))
answer = backend.complete(GenerationRequest(messages=(Message("user", "hi"),), max_tokens=10**9))
print(answer.finish_reason, answer.usage.total_tokens)
""")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["length", "1024"]


def test_the_native_loader_rejects_what_the_header_check_lets_through(models, tmp_path):
    data = bytearray(Path(models.reply).read_bytes())
    data[16:20] = (int.from_bytes(data[16:20], "little") + 1).to_bytes(4, "little")  # vocab
    path = tmp_path / "mismatch.bin"
    path.write_bytes(bytes(data))
    result = run_python(f"""
from proxy.backends.chatglm.backend import load_backend
from proxy.config.settings import Settings
try:
    load_backend(Settings.of(backend="chatglm", model={str(path)!r}))
except ValueError as exc:
    print(exc)
""")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"chatglm.cpp cannot load {path}" in result.stdout


def test_everything_else_works_without_chatglm_cpp(models, tmp_path):
    result = run_python(f"""
import sys
sys.modules["chatglm_cpp"] = None  # as if the extra were not installed
from proxy.app import create_app
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings

runtime = Runtime(cache_dir={str(tmp_path)!r})
create_app(Settings(), runtime)
try:
    create_app(Settings.of(backend="chatglm", model={str(models.reply)!r}), runtime)
except ValueError as exc:
    print(exc)
""")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pip install 'oai-proxy[chatglm]'" in result.stdout


def test_a_context_limit_that_leaves_no_room_is_refused(models):
    with pytest.raises(ValueError, match="leaves no room"):
        backend(models.reply, max_length=100000, max_context_length=9000)
