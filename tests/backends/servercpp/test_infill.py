"""Fill-in-the-middle on each kind of server.cpp, against the faithful fake servers: sent to a
current server's ``/infill``, laid out by the proxy for an old server from its model's FIM
tokens, refused by name where the model has none."""

from __future__ import annotations

from dataclasses import replace

import gguf
import pytest

from proxy.backends.servercpp.fimprompt import SNIPPET, FimTokens
from proxy.backends.servercpp.kinds import LLAMACPP, LLAMACPP_2023, POWERINFER
from proxy.backends.servercpp.payload import fill_payload
from proxy.config.settings import Settings
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, SourceChunk
from proxy.fleet.build import build_fleet
from tests.fakes.servercpp import FakeServerCpp
from tests.runtimes import NO_FILES

GAP = GenerationRequest(prompt="def add(a, b):\n    ", suffix="\n    return c", max_tokens=4)


def fleet_over(fake: FakeServerCpp):
    return build_fleet(Settings.of(llama_api=fake.url), NO_FILES)


def test_the_infill_body_has_the_gaps_two_sides_and_keeps_the_rest():
    payload = {"prompt": "before", "n_predict": 4, "stream": True, "id_slot": 1}
    assert fill_payload(payload, GenerationRequest(suffix="after"), LLAMACPP, None, letters) == {
        "prompt": "",
        "input_prefix": "before",
        "input_suffix": "after",
        "input_extra": [],
        "n_predict": 4,
        "stream": True,
        "id_slot": 1,
    }


def letters(text: str) -> list:
    """A tokenizer of one token a character (ids from 1000), so that cuts are easy to read."""
    return [1000 + ord(character) for character in text]


TOKENS = FimTokens(1, 2, 3, texts={1: "<PRE>", 2: "<SUF>", 3: "<MID>"})


@pytest.mark.parametrize(
    "kind, prompt",
    [
        (POWERINFER, [1, *letters("before"), 2, *letters("after"), 3]),
        (LLAMACPP_2023, "<PRE>before<SUF>after<MID>"),
    ],
    ids=["token ids", "text"],
)
def test_an_old_server_is_sent_the_gap_laid_out_as_it_reads_a_prompt(kind, prompt):
    payload = {"prompt": "before", "n_predict": 4, "slot_id": -1}
    filled = fill_payload(payload, GenerationRequest(suffix="after"), kind, TOKENS, letters)
    assert filled == {**payload, "prompt": prompt}


@pytest.mark.parametrize("kind", [POWERINFER, LLAMACPP_2023], ids=["token ids", "text"])
def test_a_long_gap_is_cut_to_a_batch_as_llama_cpp_cuts_it(kind):
    """Of a batch of 512: the prefix's last 384 tokens, the suffix's first 128 less two and
    the cursor line's."""
    prefix, suffix, cursor = "p" * 300 + "q" * 400, "s" * 100 + "t" * 100, "c" * 10
    request = GenerationRequest(suffix=suffix, cursor=cursor)
    filled = fill_payload({"prompt": prefix}, request, kind, TOKENS, letters)["prompt"]
    kept = ("p" * 300 + "q" * 400)[-384:], ("s" * 100 + "t" * 100)[:116]
    if kind is POWERINFER:
        assert filled == [1, *letters(kept[0]), *letters(cursor), 2, *letters(kept[1]), 3]
    else:
        assert filled == f"<PRE>{kept[0]}{cursor}<SUF>{kept[1]}<MID>"


def test_a_gap_that_begins_with_text_goes_to_powerinfer_as_ids_there():
    """PowerInfer puts BOS before a prompt whose first piece is text."""
    request = GenerationRequest(suffix="after", nearby=(SourceChunk("x = 1"),))
    filled = fill_payload({"prompt": "before"}, request, POWERINFER, TOKENS, letters)
    assert filled["prompt"] == [
        *letters(SNIPPET), "x = 1", 1, *letters("before"), 2, *letters("after"), 3
    ]  # fmt: skip


def filled(fake: FakeServerCpp, fleet, stream: bool, gap: GenerationRequest = GAP) -> tuple:
    """``(path, body)`` of the one generation the fleet sent ``fake`` for ``gap``, whose text
    came back whole or streamed."""
    if stream:
        _, *chunks = fleet.stream(gap)
        text = "".join(chunk.text for chunk in chunks)
    else:
        text = fleet.complete(gap).text
    assert text == "Hello, world!"
    ((path, body, _),) = [r for r in fake.requests if r[0] in ("/infill", "/completion")]
    return path, body


def coder_gguf(path) -> str:
    """A model file whose vocabulary has Qwen2.5-Coder's FIM tokens (no weights: the fake
    server only reports the path, and the proxy only reads the header)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"])
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return str(path)


@pytest.mark.parametrize(
    "kind, prompt",
    [
        ("powerinfer", None),  # token ids, tokenized by the server: see its /tokenize
        ("llamacpp-2023", f"<|fim_prefix|>{GAP.prompt}<|fim_suffix|>{GAP.suffix}<|fim_middle|>"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_old_server_fills_the_gap_with_the_prompt_the_proxy_lays_out(
    kind, prompt, stream, tmp_path
):
    with (
        FakeServerCpp(kind, model_path=coder_gguf(tmp_path / "coder.gguf")) as fake,
        fleet_over(fake) as fleet,
    ):
        path, body = filled(fake, fleet, stream)
    assert path == "/completion"
    if prompt is None:
        sent = body["prompt"]
        assert sent[0] == 1 and 2 in sent and sent[-1] == 3
        assert all(isinstance(token, int) for token in sent)
    else:
        assert body["prompt"] == prompt


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023"])
def test_a_gap_that_sets_no_length_is_told_what_its_prompt_leaves_of_an_old_servers_context(
    kind, tmp_path
):
    """The prompt as laid out (token ids, or text the server tokenizes), its BOS counted."""
    with (
        FakeServerCpp(kind, model_path=coder_gguf(tmp_path / "coder.gguf"), n_ctx=512) as fake,
        fleet_over(fake) as fleet,
    ):
        _, body = filled(fake, fleet, stream=False, gap=replace(GAP, max_tokens=None))
    prompt = body["prompt"]
    size = 1 + (len(prompt) if isinstance(prompt, list) else len(fake.vocab.tokenize(prompt)))
    assert body["n_predict"] == 512 - size - 2


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_gap_goes_to_a_current_servers_infill(stream):
    with FakeServerCpp("llamacpp") as fake, fleet_over(fake) as fleet:
        path, body = filled(fake, fleet, stream)
    # a whole gap is read as a stream too: a server stops writing one whose reader has gone
    assert path == "/infill" and body["stream"] is True
    assert (body["input_prefix"], body["input_suffix"], body["prompt"]) == (
        GAP.prompt,
        GAP.suffix,
        "",
    )


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023"])
def test_an_old_server_whose_model_has_no_fim_tokens_refuses_the_suffix_by_name(kind):
    with FakeServerCpp(kind) as fake, fleet_over(fake) as fleet:
        for ask in (fleet.complete, lambda request: list(fleet.stream(request))):
            with pytest.raises(InvalidRequestError) as raised:
                ask(GAP)
            assert raised.value.param == "suffix" and "/infill" in raised.value.message
            assert "no fill-in-the-middle tokens" in raised.value.message
        assert not [r for r in fake.requests if r[0] in ("/infill", "/completion")]


def test_a_model_without_fill_in_the_middle_tokens_refuses_the_suffix_by_name():
    with FakeServerCpp("llamacpp", fim=False) as fake, fleet_over(fake) as fleet:
        for ask in (fleet.complete, lambda request: list(fleet.stream(request))):
            with pytest.raises(InvalidRequestError) as raised:
                ask(GAP)
            assert raised.value.param == "suffix"
            assert "fill-in-the-middle tokens" in raised.value.message
