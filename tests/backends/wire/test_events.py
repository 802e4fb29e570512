"""What a server of a public API's error answers say: a route it lacks, or something else."""

from __future__ import annotations

import pytest

from proxy.backends.wire.events import error_message, lacks_route

LLAMA_SERVER_404 = {"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}}
NOT_SUPPORTED = {
    "error": {
        "code": 501,
        "message": "This server does not support embeddings. Start it with `--embeddings`",
        "type": "not_supported_error",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "lacks"),
    [
        (404, LLAMA_SERVER_404, True),
        (404, {"detail": "Not Found"}, True),  # vLLM's and LiteLLM's (FastAPI)
        (404, {"message": "404 page not found"}, True),  # Ollama's, as text
        (405, {"detail": "Method Not Allowed"}, True),
        (501, NOT_SUPPORTED, True),
        (  # OpenAI's: the model the proxy asked for, not the route
            404,
            {"error": {"message": "The model `x` does not exist", "code": "model_not_found"}},
            False,
        ),
        (404, {"object": "error", "message": "The model `x` does not exist.", "code": 404}, False),
        (404, {"error": {"message": 'model "x" not found, try pulling it first'}}, False),
        (400, {"error": {"message": "input is required"}}, False),
        (500, {"error": {"message": "oops"}}, False),
    ],
)
def test_a_route_is_lacking_when_the_server_says_so(status, body, lacks):
    assert lacks_route(status, body) is lacks


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (NOT_SUPPORTED, "This server does not support embeddings. Start it with `--embeddings`"),
        ({"message": "plain"}, "plain"),
        ({"error": "said"}, "said"),
        ({"detail": "Not Found"}, "{'detail': 'Not Found'}"),
    ],
)
def test_an_error_says_its_message_in_any_shape(body, message):
    assert error_message(body) == message
