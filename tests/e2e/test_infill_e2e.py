"""Fill-in-the-middle through the proxy, on real servers: an editor's completion.

A tiny coder model (Qwen2.5-Coder's FIM tokens, which llama.cpp finds in its vocabulary)
on current llama-server: the gap the proxy asks ``/infill`` to
fill is filled exactly as the server's own ``/infill`` fills it, whole and streamed, through
OpenAI's ``suffix`` (the ``openai`` SDK) and Ollama's (the ``ollama`` client).
SmolLM2, whose vocabulary has no FIM tokens, and an old server, which has no ``/infill``,
refuse the ``suffix`` by name in each client's own error. llama.cpp's own ``/infill``, as
llama.vim sends it, answers through the proxy as the server answers it.
"""

from __future__ import annotations

import json

import ollama
import openai
import pytest
import requests

from tests.processes import ProxyProcess

from . import libraries
from .families import CHATML, FAMILIES
from .llama_server import LlamaServer
from .marks import OLD
from .scriptedmodel import Script, Tokens, write_scripted_gguf
from .smollm2 import smollm2
from .tap import Tap

pytestmark = pytest.mark.e2e

FIM = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|file_sep|>")
CODER = Tokens(**{**CHATML, "control": CHATML["control"] + FIM})
MIDDLE = "return a + b"
BEFORE, AFTER = "def add(a, b):\n    ", "\n\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory, logs):
    """``(server, proxy)``: the coder model on current llama-server, behind the proxy."""
    model = write_scripted_gguf(
        tmp_path_factory.mktemp("coder") / "coder.gguf",
        [Script(MIDDLE)],
        CODER,
        next(f for f in FAMILIES if f.name == "qwen2.5").chat_template(),
        name="coder",
    )
    name = "infill"
    with (
        LlamaServer(model, logs / f"{name}.log", parallel=1) as server,
        ProxyProcess(server.url, logs / f"proxy-{name}.log") as proxy,
    ):
        yield server, proxy


def own_infill(server: LlamaServer, **extra) -> dict:
    """What the server's own ``/infill`` answers the gap."""
    body = {"input_prefix": BEFORE, "input_suffix": AFTER, "n_predict": 8, "temperature": 0}
    reply = requests.post(server.url + "/infill", json={**body, **extra}, timeout=60)
    reply.raise_for_status()
    return reply.json()


def test_the_openai_sdks_suffix_fills_the_gap_as_the_servers_infill(served):
    server, proxy = served
    own = own_infill(server)
    assert own["content"].startswith("return a")  # the model's middle, not a plain completion
    answer = proxy.sdk().completions.create(
        model="coder", prompt=BEFORE, suffix=AFTER, max_tokens=8, temperature=0
    )
    assert answer.choices[0].text == own["content"]
    assert answer.usage.prompt_tokens == own["tokens_evaluated"]


def test_a_streamed_gap_comes_token_by_token_as_the_servers_infill(served):
    server, proxy = served
    own = own_infill(server)
    stream = proxy.sdk().completions.create(
        model="coder", prompt=BEFORE, suffix=AFTER, max_tokens=8, temperature=0, stream=True
    )
    pieces = [chunk.choices[0].text for chunk in stream if chunk.choices]
    assert len([piece for piece in pieces if piece]) > 1
    assert "".join(pieces) == own["content"]


def test_ollamas_suffix_fills_the_gap_whole_and_streamed(served):
    server, proxy = served
    own = own_infill(server)
    client = proxy.ollama()
    options = {"num_predict": 8, "temperature": 0}
    whole = client.generate(model="coder", prompt=BEFORE, suffix=AFTER, options=options)
    assert whole.response == own["content"]
    assert whole.done_reason == ("length" if own["stop_type"] == "limit" else "stop")
    streamed = client.generate(
        model="coder", prompt=BEFORE, suffix=AFTER, options=options, stream=True
    )
    assert "".join(part.response for part in streamed) == own["content"]


EDITOR = {  # what llama.vim sends (its cache tuning aside)
    "input_prefix": BEFORE,
    "input_suffix": AFTER,
    "input_extra": [{"text": "def sub(a, b):\n    return a - b\n", "filename": "util.py"}],
    "prompt": "",
    "n_predict": 8,
    "n_indent": 4,
    "top_k": 40,
    "top_p": 0.99,
    "samplers": ["top_k", "top_p", "infill"],
    "t_max_prompt_ms": 500,
    "t_max_predict_ms": 1000,
    "repeat_last_n": 128,
    "cache_prompt": True,
    "id_slot": 0,
}
# what llama.vim sends as other files' chunks come in: the server only reads them into its cache
WARM_UP = {"id_slot": 0, "input_prefix": "", "input_suffix": "", "prompt": "", "n_predict": 0,
           "input_extra": EDITOR["input_extra"], "cache_prompt": True, "t_max_prompt_ms": 1,
           "t_max_predict_ms": 1}  # fmt: skip


def test_llama_cpps_own_infill_through_the_proxy_answers_as_the_server(served):
    server, proxy = served
    own = requests.post(server.url + "/infill", json=EDITOR, timeout=60).json()
    for answered in (server, proxy):  # the server writes a token even of n_predict 0
        warmed = requests.post(answered.url + "/infill", json=WARM_UP, timeout=60).json()
        assert warmed["tokens_predicted"] <= 1 and warmed["stop_type"] == "limit"
    through = requests.post(proxy.url + "/infill", json=EDITOR, timeout=60).json()
    assert own["content"].startswith("return a")
    for field in ("content", "tokens_evaluated", "tokens_predicted", "stop_type", "truncated"):
        assert through[field] == own[field], field
    wanted = ["content", "timings/prompt_n", "timings/predicted_n", "tokens_cached"]
    cut = requests.post(
        proxy.url + "/infill", json={**EDITOR, "response_fields": wanted}, timeout=60
    ).json()
    assert sorted(cut) == sorted(wanted) and cut["content"] == own["content"]
    assert cut["timings/predicted_n"] == own["tokens_predicted"]


def test_llama_cpps_own_infill_streams_through_the_proxy(served):
    server, proxy = served
    own = requests.post(server.url + "/infill", json=EDITOR, timeout=60).json()
    with requests.post(
        proxy.url + "/infill", json={**EDITOR, "stream": True}, stream=True, timeout=60
    ) as reply:
        events = [
            json.loads(line[len(b"data: ") :])
            for line in reply.iter_lines()
            if line.startswith(b"data: ")
        ]
    assert "".join(event["content"] for event in events) == own["content"]
    assert [event["stop"] for event in events].index(True) == len(events) - 1
    assert events[-1]["tokens_evaluated"] == own["tokens_evaluated"]


@pytest.mark.parametrize("provider", ["mistral", "openai"])
def test_continues_autocomplete_fills_the_gap_as_the_servers_infill(served, provider, tmp_path):
    """Continue's own FIM code (its model adapters, under Node) streams the gap from
    Mistral's ``/v1/fim/completions``, as its Mistral and OpenAI-compatible providers do."""
    server, proxy = served
    own = own_infill(server)
    given = {"provider": provider, "model": "coder", "key": "unused", "prompt": BEFORE,
             "suffix": AFTER, "max_tokens": 8}  # fmt: skip
    with Tap(proxy.url) as tap:
        result = libraries.finished(
            libraries.run(
                [
                    "node",
                    str(libraries.SCRIPTS / "continue-fim.js"),
                    json.dumps({**given, "url": tap.url}),
                ],
                tmp_path,
                {"NODE_PATH": str(libraries.clients_folder() / "node" / "node_modules")},
            )
        )
    assert result["text"] == own["content"] and result["chunks"] > 1
    ((asked,),) = [tap.to("/v1/fim/completions")]
    assert asked.status == 200 and asked.streamed
    assert (asked.body["prompt"], asked.body["suffix"]) == (BEFORE, AFTER)


def test_a_model_without_fill_in_the_middle_tokens_refuses_the_suffix_by_name(logs):
    with (
        LlamaServer(smollm2(), logs / "infill-smollm2.log", parallel=1) as server,
        ProxyProcess(server.url, logs / "proxy-infill-smollm2.log") as proxy,
    ):
        assert requests.post(server.url + "/infill", json={"input_prefix": "x"}).status_code == 501
        with pytest.raises(openai.BadRequestError) as refused:
            proxy.sdk().completions.create(model="smol", prompt=BEFORE, suffix=AFTER)
        assert refused.value.body["param"] == "suffix"
        with pytest.raises(ollama.ResponseError) as told:
            proxy.ollama().generate(model="smol", prompt=BEFORE, suffix=AFTER)
        assert told.value.status_code == 400 and "suffix" in told.value.error


@pytest.mark.parametrize("kind", OLD)
def test_an_old_server_whose_model_has_no_fim_tokens_refuses_the_suffix_by_name(kind, model, logs):
    with (
        LlamaServer(model, logs / f"infill-{kind}.log", kind=kind, parallel=1) as server,
        ProxyProcess(server.url, logs / f"proxy-infill-{kind}.log") as proxy,
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            proxy.sdk().completions.create(model="tiny", prompt=BEFORE, suffix=AFTER, stream=True)
        assert refused.value.body["param"] == "suffix"
        assert "no fill-in-the-middle tokens" in refused.value.message
        editor = requests.post(proxy.url + "/infill", json={"input_prefix": BEFORE}, timeout=30)
        assert editor.status_code == 400 and editor.json()["error"]["param"] == "input_suffix"
