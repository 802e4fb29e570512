"""The fill-in-the-middle prompt the proxy lays out, family by family, is the one llama.cpp's
``/infill`` builds, token for token; and on the old servers, which have no ``/infill``, the
proxy fills a gap with it.

Each family's tiny model (:mod:`.codermodels`) carries its FIM tokens; its random weights make
the greedy answer depend on every token of the prompt. On current llama-server, the prompt
laid out by :mod:`proxy.backends.servercpp.fimprompt` and tokenized piece by piece gives what the
server's own ``/infill`` gives: the same prompt, token count and answer. On PowerInfer's and
llama.cpp's 2023 servers, the same tokens reach the model through the proxy (the 2023 server
reads the prompt as text, and tokenizes it to those tokens).
"""

from __future__ import annotations

import pytest
import requests

from proxy.backends.servercpp import fimprompt, gguffile
from proxy.core.types import SourceChunk
from tests.processes import ProxyProcess

from .codermodels import CODERS
from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"
EXTRA = (SourceChunk("def sub(a, b):\n    return a - b\n", "util.py"), SourceChunk("x = 1\n"))
CURSOR = "return"
LONG_PREFIX = "def sub(a, b):\n    return a - b\n\n\n" * 40 + PREFIX  # past a batch of 512
GREEDY = {"n_predict": 8, "temperature": 0, "cache_prompt": False}


@pytest.fixture(scope="module", params=CODERS, ids=lambda coder: coder.name)
def coder(request, tmp_path_factory, logs):
    """``(model path, its FIM tokens, current llama-server, the proxy before it)`` of one
    family."""
    model = request.param.write(tmp_path_factory.mktemp("coders"))
    tokens = fimprompt.fim_tokens(gguffile.read(str(model)).fields)
    log = logs / f"fim-{request.param.name}.log"
    # a batch well inside the context: /infill then keeps every other file's chunk
    with (
        LlamaServer(model, log, parallel=1, extra_args=["--batch-size", "512"]) as server,
        ProxyProcess(server.url, logs / f"proxy-fim-{request.param.name}.log") as proxy,
    ):
        yield model, tokens, server, proxy


def token_ids(server: LlamaServer, parts: list) -> list:
    """``parts`` as token ids: each text piece tokenized by ``server`` on its own."""
    ids = []
    for part in parts:
        if isinstance(part, int):
            ids.append(part)
        else:
            reply = requests.post(server.url + "/tokenize", json={"content": part}, timeout=30)
            ids += [t if isinstance(t, int) else t["id"] for t in reply.json()["tokens"]]
    return ids


def post(server, path: str, body: dict) -> dict:
    """``body`` greedily to ``server`` (or the proxy), answered."""
    reply = requests.post(server.url + path, json={**GREEDY, **body}, timeout=60)
    reply.raise_for_status()
    return reply.json()


def own_infill_body(extra=(), cursor: str = "") -> dict:
    """An editor's ``/infill`` body for the gap."""
    return {
        "input_prefix": PREFIX,
        "input_suffix": SUFFIX,
        "input_extra": [{"text": c.text, "filename": c.filename} for c in extra],
        "prompt": cursor,
    }


def own_infill(server: LlamaServer, extra=(), cursor: str = "") -> dict:
    return post(server, "/infill", own_infill_body(extra, cursor))


@pytest.mark.parametrize("extra, cursor", [((), ""), (EXTRA, CURSOR)], ids=["gap", "repository"])
def test_the_laid_out_prompt_is_the_one_infill_builds(coder, extra, cursor):
    _, tokens, server, _ = coder
    assert tokens is not None
    own = own_infill(server, extra, cursor)
    ids = token_ids(server, fimprompt.layout(tokens, PREFIX, SUFFIX, extra, cursor))
    laid_out = post(server, "/completion", {"prompt": ids})
    assert laid_out["prompt"] == own["prompt"]  # the prompt as the server reads it back
    assert laid_out["tokens_evaluated"] == own["tokens_evaluated"] == len(ids)
    assert laid_out["content"] == own["content"]


def test_the_proxy_fills_the_gap_as_infill_on_current_llama_server(coder):
    _, _, server, proxy = coder
    own = own_infill(server)
    client = proxy.sdk()
    answer = client.completions.create(
        model=client.models.list().data[0].id,
        prompt=PREFIX,
        suffix=SUFFIX,
        max_tokens=GREEDY["n_predict"],
        temperature=0,
    )
    assert answer.choices[0].text == own["content"] != ""
    assert answer.usage.prompt_tokens == own["tokens_evaluated"]


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023"])
def test_an_old_server_fills_the_gap_through_the_proxy_with_those_tokens(coder, kind, logs):
    model, tokens, current, _ = coder
    parts = fimprompt.layout(tokens, PREFIX, SUFFIX)
    ids = token_ids(current, parts)
    assert len(ids) == own_infill(current)["tokens_evaluated"]
    name = f"fim-{model.stem}-{kind}"
    with (
        LlamaServer(model, logs / f"{name}.log", kind=kind, parallel=1) as server,
        ProxyProcess(server.url, logs / f"proxy-{name}.log") as proxy,
    ):
        if kind == "powerinfer":
            assert token_ids(server, parts) == ids
            own = post(server, "/completion", {"prompt": ids})
        else:  # it reads special tokens out of a text prompt, and puts BOS first itself
            text = fimprompt.as_text(tokens, parts)
            assert token_ids(server, [text]) == [i for i in ids if i != tokens.bos]
            own = post(server, "/completion", {"prompt": text})
        editor = post(proxy, "/infill", own_infill_body(EXTRA, CURSOR))
        long = post(proxy, "/infill", {"input_prefix": LONG_PREFIX, "input_suffix": SUFFIX})
        laid_out = fimprompt.layout(tokens, PREFIX, SUFFIX, EXTRA, CURSOR)
        in_editor = (
            len(token_ids(server, laid_out))
            if kind == "powerinfer"
            else len(token_ids(server, [fimprompt.as_text(tokens, laid_out)]))
            + (tokens.bos is not None)
        )
        client = proxy.sdk()
        name = client.models.list().data[0].id
        options = {"num_predict": GREEDY["n_predict"], "temperature": 0}
        ollama = proxy.ollama().generate(name, PREFIX, suffix=SUFFIX, options=options)
        mistral = requests.post(proxy.url + "/v1/fim/completions", timeout=60, json={
            "model": name, "prompt": PREFIX, "suffix": SUFFIX, "temperature": 0,
            "max_tokens": GREEDY["n_predict"]}).json()  # Mistral's fields alone  # fmt: skip
        answer = client.completions.create(
            model=name, prompt=PREFIX, suffix=SUFFIX, max_tokens=GREEDY["n_predict"], temperature=0
        )
    # the server's own answer runs a token past the limit, which the proxy keeps
    assert answer.choices[0].text and own["content"].startswith(answer.choices[0].text)
    assert answer.usage.completion_tokens == GREEDY["n_predict"]
    assert ollama.response == mistral["choices"][0]["message"]["content"] == answer.choices[0].text
    assert answer.usage.prompt_tokens == len(ids)
    # llama.cpp's own /infill, other files and the cursor's line with it, on a server
    # without: the old server's tokenizer may cut a text otherwise than today's (the
    # snippet separator takes a token more), so its own count of the layout is the measure
    assert editor["tokens_evaluated"] == in_editor
    assert editor["content"] and editor["tokens_predicted"] == GREEDY["n_predict"]
    # a long file is cut to the batch as /infill cuts it (both servers evaluate 512 at once):
    # to its tokens on PowerInfer; to the characters whose tokens fit on the 2023 server
    cut = post(current, "/infill", {"input_prefix": LONG_PREFIX, "input_suffix": SUFFIX})
    assert cut["tokens_evaluated"] < len(token_ids(current, [LONG_PREFIX]))
    if kind == "powerinfer":
        assert long["tokens_evaluated"] == cut["tokens_evaluated"]
    else:
        assert cut["tokens_evaluated"] - 2 <= long["tokens_evaluated"] <= cut["tokens_evaluated"]
