"""Which routes an OpenAI-compatible upstream serves, declared or learned, what its card
says, and the error of a route it lacks."""

from __future__ import annotations

import pytest

from proxy.backends.openai.endpoints import PATHS, Endpoints, absent, capabilities
from proxy.config.catalog import ENDPOINTS
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError

LACKS = "the server of model 'big' has no /embeddings (it answered 404: File Not Found)"


def test_every_endpoint_the_models_file_may_name_has_a_path():
    assert tuple(PATHS) == ENDPOINTS


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        (("chat",), ("completion", "tools")),
        (("chat", "completions"), ("completion", "tools")),
        (("completions",), ("completion",)),
        (("embeddings",), ("embedding",)),
        (("rerank",), ("rerank",)),
        (("transcriptions", "speech"), ("transcription", "speech")),
        (("image_edits",), ("image_generation",)),
        (
            ENDPOINTS,
            (
                "completion",
                "tools",
                "embedding",
                "rerank",
                "transcription",
                "speech",
                "image_generation",
            ),
        ),
        ((), ()),
    ],
)
def test_a_cards_capabilities_are_what_its_routes_do(served, expected):
    assert capabilities(served) == expected


@pytest.mark.parametrize(
    ("endpoint", "error", "param", "words"),
    [
        ("chat", InvalidRequestError, "model", "'big' does not chat: why"),
        ("completions", InvalidRequestError, "prompt", "'big' takes no raw prompt (why)"),
        ("embeddings", NotImplementedByBackendError, None, "'big' has no embeddings: why"),
        ("rerank", InvalidRequestError, "model", "'big' does not rerank: why"),
        ("speech", InvalidRequestError, "model", "'big' does not speak: why"),
        ("image_generations", InvalidRequestError, "model", "'big' does not draw pictures: why"),
    ],
)
def test_a_route_the_model_lacks_is_refused_as_its_route_refuses_it(endpoint, error, param, words):
    refused = absent(endpoint, "big", "why")
    assert type(refused) is error and refused.param == param
    assert words in refused.message


@pytest.mark.parametrize(
    ("declared", "refused"),
    [
        ((), ()),  # not declared: every route is tried
        (
            ("chat", "completions"),
            ("embeddings", "rerank", "responses", "transcriptions", "translations", "speech")
            + ("image_generations", "image_edits"),
        ),
        (
            ("embeddings",),
            ("chat", "completions", "rerank", "responses", "transcriptions", "translations")
            + ("speech", "image_generations", "image_edits"),
        ),
    ],
)
def test_declared_routes_are_the_only_ones_served(declared, refused):
    endpoints = Endpoints("big", declared)
    assert [e for e in ENDPOINTS if endpoints.refusal(e) is not None] == list(refused)
    for endpoint in refused:
        assert "the models file gives its endpoints as" in endpoints.refusal(endpoint).message


@pytest.mark.parametrize("declared", [(), ENDPOINTS])
def test_a_route_found_lacking_is_refused_from_then_on_in_the_words_it_was_found(declared):
    endpoints = Endpoints("big", declared)
    error = endpoints.lacks("embeddings", LACKS)
    assert error.message == f"the model 'big' has no embeddings: {LACKS}"
    assert endpoints.refusal("embeddings").message == error.message
    assert endpoints.refusal("rerank") is None and endpoints.refusal("chat") is None
    assert "embedding" not in endpoints.capabilities()


@pytest.mark.parametrize(
    ("declared", "answered", "lacking", "expected"),
    [
        ((), (), (), ("completion", "tools")),  # chats until the upstream says otherwise
        ((), ("embeddings",), (), ("completion", "tools", "embedding")),
        ((), ("rerank",), ("chat",), ("completion", "rerank")),  # raw prompts still assumed
        ((), ("embeddings",), ("chat", "completions"), ("embedding",)),
        (("embeddings",), (), (), ("embedding",)),  # declared: said from the start
        (("chat", "rerank"), (), ("rerank",), ("completion", "tools")),
    ],
)
def test_the_card_says_what_is_known(declared, answered, lacking, expected):
    endpoints = Endpoints("big", declared)
    for endpoint in answered:
        endpoints.served(endpoint)
    for endpoint in lacking:
        endpoints.lacks(endpoint, "it answered 404")
    assert endpoints.capabilities() == expected
