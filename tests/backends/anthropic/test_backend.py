"""What a Messages API server has no route for is refused by name, before anything is sent."""

from __future__ import annotations

import pytest

from proxy.backends.anthropic.backend import AnthropicBackend
from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import InvalidRequestError, NotImplementedByBackendError
from proxy.core.types import GenerationRequest
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount
from tests.processes import free_port

LABEL = "the server of model 'messages'"


@pytest.fixture
def backend():
    client = UpstreamClient(f"http://127.0.0.1:{free_port()}", label=LABEL, public_api=True)
    admission = Admission(LABEL, SlotCount(), max_queue=4, queue_timeout=0.5)
    with AnthropicBackend(client, admission, "messages", "some-model") as made:
        yield made


@pytest.mark.parametrize(
    ("ask", "error", "param", "message"),
    [
        (
            lambda backend: backend.complete(GenerationRequest(prompt="once")),
            InvalidRequestError,
            "prompt",
            f"prompt cannot be served: {LABEL} speaks Anthropic's Messages API, which has no "
            f"raw prompt (send messages)",
        ),
        (
            lambda backend: backend.embed(["a"]),
            NotImplementedByBackendError,
            None,
            f"the model 'messages' has no embeddings: {LABEL} speaks Anthropic's Messages API, "
            f"which has none",
        ),
        (
            lambda backend: backend.rerank("q", ["a"]),
            InvalidRequestError,
            "model",
            f"the model 'messages' does not rerank: {LABEL} speaks Anthropic's Messages API, "
            f"which has no reranking",
        ),
    ],
    ids=["raw-prompt", "embeddings", "rerank"],
)
def test_what_the_messages_api_has_no_route_for_is_refused_by_name(
    backend, ask, error, param, message
):
    with pytest.raises(error) as refused:
        ask(backend)
    assert type(refused.value) is error and refused.value.param == param
    assert refused.value.message == message
