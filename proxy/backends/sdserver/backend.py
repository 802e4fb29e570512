"""The sdserver backend: a model on stable-diffusion.cpp's ``sd-server``, which draws
pictures on OpenAI's image routes, one at a time. Each drawing takes a slot as a generation
does (fair turns, the shared queue), goes in the fields sd-server reads
(:mod:`.payload`), and comes back as sd-server wrote it. It answers nothing else: a chat,
an embedding or a transcription is refused by name."""

from __future__ import annotations

import json
from typing import Iterator

from proxy.backends.base import Backend
from proxy.backends.sdserver import payload
from proxy.backends.wire import form
from proxy.backends.wire.client import UpstreamClient
from proxy.core.answers import Chunk, Completion, Health, ModelCard, ModelInfo
from proxy.core.caller import NOBODY, Caller
from proxy.core.errors import InvalidRequestError, ProxyError
from proxy.core.pictures import Drawing, Pictures
from proxy.core.types import GenerationRequest
from proxy.queue.admission import Admission

PATHS = {"generations": "/v1/images/generations", "edits": "/v1/images/edits"}
MODELS_PATH = "/v1/models"  # answered once the server has loaded its model
HEALTH_TIMEOUT = 5.0  # seconds the model list may take to say the server is there


class SdServerBackend(Backend):
    """One sd-server (a replica) of one model, at the server's own address."""

    name = "sdserver"

    def __init__(self, client: UpstreamClient, admission: Admission, served_name: str) -> None:
        self.client = client
        self.admission = admission
        self.served_name = served_name

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        """The fields sd-server reads, and an edit's pictures byte for byte, once a slot is
        free; its answer as it wrote it."""
        fields = payload.fields(asked)
        if asked.task == "edits":
            content_type, data = form.with_uploads(fields, asked.uploads)
        else:
            content_type, data = "application/json", json.dumps(fields).encode()
        path = PATHS[asked.task]
        with self.client.blamed():
            reply = self.admission.run(
                lambda: self.client.post_encoded(path, content_type, data, caller=caller), caller
            )
        return Pictures(reply.content)

    def complete(self, request: GenerationRequest) -> Completion:
        raise self._draws_only()

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        raise self._draws_only()

    def _draws_only(self) -> InvalidRequestError:
        return InvalidRequestError(
            f"the model {self.served_name!r} does not chat: it is on sd-server, which draws "
            "pictures (POST /v1/images/generations)",
            param="model",
        )

    def models(self) -> list:
        card = ModelCard(capabilities=("image_generation",))
        return [ModelInfo(self.served_name, owned_by="stable-diffusion.cpp", card=card)]

    def probe(self) -> Health:
        """Whether the server lists its model: it listens only once the model is loaded."""
        detail = {"upstream": self.client.label, "model": self.served_name}
        try:
            with self.client.blamed():
                reply = self.client.get(MODELS_PATH, timeout=HEALTH_TIMEOUT)
                self.client.raise_for_status(reply)
        except ProxyError as exc:
            return Health(False, self.name, {**detail, "error": exc.message})
        return Health(True, self.name, {**detail, **self.admission.snapshot()})

    def load(self) -> tuple:
        return self.admission.busy()

    def describe(self) -> dict:
        return self.admission.snapshot()

    def close(self) -> None:
        self.client.close()
