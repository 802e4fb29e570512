"""The sdserver backend: a model on stable-diffusion.cpp's ``sd-server``, which draws
pictures on OpenAI's image routes, one at a time. Each drawing takes a slot as a generation
does (fair turns, the shared queue), goes in the fields sd-server reads
(:mod:`.payload`), and comes back as sd-server wrote it. It answers nothing else: a chat,
an embedding or a transcription is refused by name."""

from __future__ import annotations

import json

from proxy.backends.openai.backend import OpenAIBackend
from proxy.backends.openai.endpoints import PATHS
from proxy.backends.sdserver import payload
from proxy.backends.wire import form
from proxy.core.caller import NOBODY, Caller
from proxy.core.pictures import Drawing, Pictures

ENDPOINTS = ("image_generations", "image_edits")


class SdServerBackend(OpenAIBackend):
    """One sd-server (a replica) of one model, at the server's own address."""

    name = "sdserver"
    models_path = "/v1/models"
    owned_by = "stable-diffusion.cpp"

    def __init__(self, client, admission, served_name: str) -> None:
        super().__init__(client, admission, served_name, "", endpoints=ENDPOINTS)

    def draw(self, asked: Drawing, caller: Caller = NOBODY) -> Pictures:
        """The fields sd-server reads, and an edit's pictures byte for byte; its answer as
        it wrote it."""
        fields = payload.fields(asked)
        if asked.task == "edits":
            files: dict = {}
            for name, upload in asked.uploads:
                files.setdefault(name, []).append(
                    (upload.filename, upload.content_type, upload.data)
                )
            body = form.encoded({**fields, **files})
        else:
            body = ("application/json", json.dumps(fields).encode())
        return Pictures(self._posted(f"image_{asked.task}", body, caller).content)

    def describe(self) -> dict:
        return self.admission.snapshot()

    def _path_of(self, endpoint: str) -> str:
        """sd-server's routes are under ``/v1`` of its own address."""
        problem = self.endpoints.refusal(endpoint)
        if problem is not None:
            raise problem
        return "/v1" + PATHS[endpoint]
