"""Tokens and embeddings from each kind of server.cpp, against the faithful fake servers."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.wire.client import UpstreamClient
from proxy.config.settings import Settings
from proxy.core.errors import NotImplementedByBackendError, UpstreamError
from proxy.core.types import GenerationRequest
from proxy.fleet.build import build_fleet
from tests.fakes.servercpp import FakeServerCpp
from tests.runtimes import NO_FILES

KINDS = ["powerinfer", "llamacpp-2023", "llamacpp"]


@pytest.fixture(params=KINDS)
def server(request):
    with FakeServerCpp(request.param, embedding=True) as fake:
        yield fake


def test_tokenize_gives_ids_and_pieces_on_every_kind(server):
    tokens = TokenClient(UpstreamClient(server.url)).tokenize("Hello world")
    assert [piece for _, piece in tokens] and "".join(p for _, p in tokens).strip() == "Hello world"
    ids = [token for token, _ in tokens]
    assert all(isinstance(token, int) for token in ids)
    assert TokenClient(UpstreamClient(server.url)).detokenize(ids).strip() == "Hello world"


def test_embedding_is_one_flat_vector_per_input(server):
    result = TokenClient(UpstreamClient(server.url)).embed(["one", "two words"])
    assert len(result.vectors) == 2
    assert all(isinstance(x, float) for vector in result.vectors for x in vector)
    assert len(result.vectors[0]) == len(result.vectors[1]) == server.n_embd
    assert result.prompt_tokens > 0


@pytest.mark.parametrize("kind", KINDS)
def test_embeddings_off_is_a_clear_501(kind):
    with FakeServerCpp(kind) as fake:
        with pytest.raises(NotImplementedByBackendError) as info:
            TokenClient(UpstreamClient(fake.url)).embed(["x"])
    assert "--embedding" in info.value.message


@pytest.mark.parametrize("kind", ["llamacpp-2023", "llamacpp"])
def test_the_upstream_key_is_sent(kind):
    with FakeServerCpp(kind, api_key="secret") as fake:
        keyed = build_fleet(Settings.of(llama_api=fake.url, llama_api_key="secret"), NO_FILES)
        assert keyed.complete(GenerationRequest(prompt="hi")).text == "Hello, world!"
        unkeyed = build_fleet(Settings.of(llama_api=fake.url), NO_FILES)
        with pytest.raises(UpstreamError) as info:
            unkeyed.complete(GenerationRequest(prompt="hi"))
    assert "--llama-api-key" in info.value.message


WIDE = "你好 the 😀 cat"


def test_wide_text_tokenizes_into_whole_pieces_without_detokenizing_parts(server):
    tokens = TokenClient(UpstreamClient(server.url)).tokenize(WIDE)
    assert "".join(piece for _, piece in tokens).strip() == WIDE
    assert [token for token, _ in tokens] == server.vocab.tokenize(WIDE)
    assert server.type_violations == []  # no /detokenize of part of a character


def test_token_ids_need_no_detokenize(server):
    ids = TokenClient(UpstreamClient(server.url)).token_ids(WIDE)
    assert ids == server.vocab.tokenize(WIDE)
    assert [path for path, _, _ in server.requests] == ["/tokenize"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_texts_token_count_is_one_request_on_every_kind(kind):
    """What the inspector counts to where a prompt parted from the cache: a server without
    pieces would be asked once per character for them."""
    with FakeServerCpp(kind) as fake:
        fleet = build_fleet(Settings.of(llama_api=fake.url), NO_FILES)
        text = "the cat sat on the mat " * 20
        fake.requests.clear()
        counted = fleet.token_count(text)
        assert [path for path, _, _ in fake.requests] == ["/tokenize"]
        assert counted == len(fleet.tokenize(text))
