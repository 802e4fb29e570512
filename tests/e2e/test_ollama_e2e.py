"""Ollama's API through the proxy, with the real ``ollama`` Python client, on current
llama-server, and a whole and a streamed answer on the old servers (what each generation
does is proven through OpenAI's API; the translation is the same on all).

Three models behind current llama-server: ``thinker`` answers a fixed text after a thought
(see :mod:`.stoppingmodel`) under a chat template that thinks; ``tiny`` (random weights,
chatml) writes whatever a JSON Schema allows; ``embedder`` embeds. The old servers serve
``thinker`` alone.
"""

from __future__ import annotations

import contextlib
import json
import math

import jsonschema
import ollama
import pytest

from tests.processes import ProxyProcess

from .llama_server import KINDS, LlamaServer
from .marks import API, CURRENT, OLD, only
from .stoppingmodel import ANSWER_TEXT, CHAT_TEMPLATE, THINKING, THOUGHTS_TEXT, write_stopping_gguf

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Say hello."}]
REPORT = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
        "tags": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 2},
    },
    "required": ["ok", "score", "tags"],
    "additionalProperties": False,
}
BUDGET = 800  # tokens: room for the most whitespace the schema's grammar allows
CONTEXT = 8192


@pytest.fixture(scope="module")
def proxy(kind, model, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"ollama-{kind}")
    thinker = write_stopping_gguf(folder / "thinker.gguf", THINKING)
    template = folder / "thinking.jinja"
    template.write_text(CHAT_TEMPLATE)
    with contextlib.ExitStack() as stack:
        thinking = stack.enter_context(
            LlamaServer(thinker, logs / f"ollama-thinker-{kind}.log", kind=kind, ctx_size=CONTEXT)
        )
        models = folder / "models.toml"
        served = f'[models.thinker]\nupstreams = ["{thinking.url}"]\nchat_template = "{template}"\n'
        if kind not in OLD:
            tiny = stack.enter_context(
                LlamaServer(model, logs / f"ollama-tiny-{kind}.log", kind=kind)
            )
            embedder = stack.enter_context(
                LlamaServer(model, logs / f"ollama-embedder-{kind}.log", kind=kind, embedding=True)
            )
            served += (
                f'[models.tiny]\nupstreams = ["{tiny.url}"]\nchat_template = "chatml"\n'
                f'[models.embedder]\nupstreams = ["{embedder.url}"]\n'
            )
        models.write_text(served)
        yield stack.enter_context(
            ProxyProcess(
                thinking.url, logs / f"proxy-ollama-{kind}.log", args=["--config", str(models)]
            )
        )


@pytest.fixture
def client(proxy) -> ollama.Client:
    return proxy.ollama()


@only(CURRENT, why=API)
def test_list_show_and_ps(client, proxy):
    names = [model.model for model in client.list().models]
    assert names == ["thinker:latest", "tiny:latest", "embedder:latest"]
    assert all(model.digest and model.details.format == "gguf" for model in client.list().models)
    shown = client.show("thinker:latest")
    assert "completion" in shown.capabilities and "thinking" in shown.capabilities
    assert shown.modelinfo["general.basename"] == "thinker:latest"
    assert shown.modelinfo["general.architecture"] == "llama"  # as the server says
    # the context a conversation gets: each of the server's two slots holds half
    assert shown.modelinfo["llama.context_length"] == CONTEXT // 2
    assert shown.details.quantization_level
    running = [model.model for model in client.ps().models]
    assert "thinker:latest" in running


@pytest.mark.parametrize(
    "kind, api",
    [*((kind, "chat") for kind in KINDS), (CURRENT, "generate")],
    indirect=["kind"],
    scope="module",
)
def test_a_whole_answer_with_its_thoughts(client, api):
    if api == "chat":
        answer = client.chat(model="thinker", messages=HI, think=True, stream=False)
        text, thinking = answer.message.content, answer.message.thinking
    else:
        answer = client.generate(
            model="thinker:latest", prompt="Say hello.", think=True, stream=False
        )
        text, thinking = answer.response, answer.thinking
    assert (text, thinking) == (ANSWER_TEXT, THOUGHTS_TEXT)
    assert answer.done and answer.done_reason == "stop"
    assert answer.eval_count > 0 and answer.prompt_eval_count > 0
    assert answer.total_duration >= answer.eval_duration > 0
    assert answer.prompt_eval_duration > 0


@pytest.mark.parametrize(
    "kind, api",
    [(CURRENT, "chat"), *((kind, "generate") for kind in KINDS)],
    indirect=["kind"],
    scope="module",
)
def test_a_streamed_answer(client, api):
    if api == "chat":
        chunks = list(client.chat(model="thinker", messages=HI, think=True, stream=True))
        text = "".join(chunk.message.content for chunk in chunks)
        thinking = "".join(chunk.message.thinking or "" for chunk in chunks)
    else:
        chunks = list(client.generate(model="thinker", prompt="Say hello.", stream=True))
        text = "".join(chunk.response for chunk in chunks)
        thinking = "".join(chunk.thinking or "" for chunk in chunks)
    assert (text, thinking) == (ANSWER_TEXT, THOUGHTS_TEXT)
    assert [chunk.done for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].done_reason == "stop" and chunks[-1].eval_count > 0


@only(CURRENT, why=API)
def test_thoughts_stay_out_when_think_is_false(client):
    answer = client.chat(model="thinker", messages=HI, think=False, stream=False)
    assert answer.message.content == ANSWER_TEXT and not answer.message.thinking


@only(CURRENT, why=API)
def test_a_schema_shapes_the_answer(client):
    answer = client.generate(
        model="tiny",
        prompt="Rate it.",
        format=REPORT,
        stream=False,
        options={"num_predict": BUDGET, "temperature": 0},
    )
    assert answer.done_reason == "stop"
    jsonschema.validate(json.loads(answer.response), REPORT)


@only(CURRENT, why=API)
def test_json_format(client):
    answer = client.chat(
        model="tiny",
        messages=[{"role": "user", "content": "JSON?"}],
        format="json",
        stream=False,
        options={"num_predict": BUDGET},
    )
    if answer.done_reason == "stop":  # a random model may run out of its budget
        json.loads(answer.message.content)
    else:
        assert answer.done_reason == "length"


@only(CURRENT, why=API)
def test_options_reach_the_server(client):
    answer = client.generate(
        model="tiny",
        prompt="Count.",
        stream=False,
        options={"num_predict": 3, "temperature": 0.5, "num_ctx": 4096},
    )
    assert answer.done_reason == "length" and answer.eval_count == 3


@only(CURRENT, why=API)
def test_embeddings(client):
    embedded = client.embed(model="embedder", input=["a cat", "a dog"])
    assert len(embedded.embeddings) == 2
    assert all(
        math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-4)
        for vector in embedded.embeddings
    )
    older = client.embeddings(model="embedder", prompt="a cat")
    assert len(older.embedding) == len(embedded.embeddings[0])


@only(CURRENT, why=API)
def test_errors_in_ollamas_shape(client):
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nonexistent", messages=HI)
    assert missing.value.status_code == 404 and "nonexistent" in missing.value.error
    with pytest.raises(ollama.ResponseError) as bad:
        client.chat(model="thinker", messages=HI, options={"temperature": "hot"})
    assert bad.value.status_code == 400 and "options.temperature" in bad.value.error
    with pytest.raises(ollama.ResponseError) as pulled:  # a model of ollama.com's library
        client.pull("llama3")
    assert pulled.value.status_code == 400 and "'llama3' is no model on a hub" in pulled.value.error
