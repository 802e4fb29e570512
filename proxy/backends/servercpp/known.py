"""The server as the proxy knows it: its facts, found on first contact and found afresh
whenever it cannot be reached, and the connection every request to it goes over.

Both routes a generation takes (:mod:`.chatroute`, :mod:`.completionroute`) read the same
facts and retry the same way, so they share one :class:`KnownServer`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Callable, Optional, TypeVar

from proxy.backends.servercpp import chatpayload
from proxy.backends.servercpp.detect import DETECT_TIMEOUT, Detector, ServerFacts
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.kinds import ChatLayer, asks_schema
from proxy.backends.servercpp.prompting import TemplateChoice
from proxy.backends.wire import chatparse
from proxy.backends.wire.client import UpstreamClient
from proxy.core.errors import UNREACHABLE, UpstreamError, UpstreamUnavailableError
from proxy.core.types import GenerationRequest
from proxy.queue.admission import Admission

logger = logging.getLogger(__name__)

T = TypeVar("T")
# a request only a server that compiles ``json_schema`` answers with exactly ``"ok"``
SCHEMA_PROBE = {
    "prompt": "",
    "n_predict": 4,
    "temperature": 0,
    "cache_prompt": False,
    "json_schema": {"const": "ok"},
}
# a chat only a chat layer that holds an answer to a schema answers with exactly ``"ok"``
# (room for a fence around it; thoughts off where the template can turn them off)
CHAT_SCHEMA_PROBE = {
    "messages": [{"role": "user", "content": "ok"}],
    "max_tokens": 64,
    "temperature": 0,
    "cache_prompt": False,
    "chat_template_kwargs": {"enable_thinking": False},
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"const": "ok"}}},
}


class KnownServer:
    """One upstream server: how to reach it, and what was found out about it.

    ``templates``: how chats become prompts, once the server is known; ``reasoning``: how the
    model's thoughts are told from its answer (``auto``: as its template writes them).
    """

    def __init__(
        self,
        client: UpstreamClient,
        tokens: TokenClient,
        templates: TemplateChoice,
        admission: Admission,
        reasoning: str = "auto",
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.templates = templates
        self.admission = admission
        self.reasoning = reasoning
        self._facts: Optional[ServerFacts] = None
        self._schemas: Optional[bool] = None  # /completion compiles json_schema (asked once)
        self._lock = threading.Lock()

    def known(self) -> Optional[ServerFacts]:
        """The facts if the server has been reached, without reaching it."""
        return self._facts

    def detect(self) -> ServerFacts:
        """The facts, the server detected first if they are not known."""
        facts = self._facts
        if facts is None:
            with self._lock:
                facts = self._facts or self._detect_afresh()
        return facts

    def forget(self) -> None:
        """Detect the server afresh on the next request (it may run another build now)."""
        self._facts = None

    def reconnecting(self, attempt: Callable[[ServerFacts], T], facts: ServerFacts) -> T:
        """Run ``attempt`` with the server's ``facts``; if the upstream was unreachable,
        detect it afresh and try once more.

        A restarted server leaves dead pooled connections behind, perhaps on another build,
        and a request that never reached it is safe to send again.
        """
        try:
            return attempt(facts)
        except UpstreamUnavailableError as exc:
            if exc.code != UNREACHABLE:
                raise
            self.forget()
            return attempt(self.detect())

    def probe_chat_layer(
        self, request: GenerationRequest, facts: ServerFacts
    ) -> Optional[ChatLayer]:
        """The server's chat layer (its ``facts``'), if it has one, asked first whether it
        takes schemas where ``request`` has one and that is not known yet."""
        if facts.layer is not None and facts.layer.schemas is None and asks_schema(request):
            facts = self._facts = replace(
                facts, layer=facts.layer.with_schemas(self._chat_takes_schemas())
            )
        return facts.layer

    def probe_schemas(self, facts: ServerFacts) -> bool:
        """Whether the server's ``/completion`` constrains an answer by ``json_schema`` itself
        (llama-server does; the bundled engine ignores it there, so the proxy sends its own
        grammar): asked once, by a schema whose one answer is ``"ok"``."""
        if not facts.kind.has_json_schema:
            return False
        if self._schemas is None:
            try:
                reply = self.client.post("/completion", SCHEMA_PROBE, timeout=DETECT_TIMEOUT)
                content = reply.json().get("content") if reply.ok else None
            except (UpstreamError, ValueError, AttributeError):
                content = None
            self._schemas = isinstance(content, str) and content.strip() == '"ok"'
        return self._schemas

    def _chat_takes_schemas(self) -> bool:
        """Whether the chat layer holds an answer to a JSON schema: on some families' templates
        llama.cpp's lets the model write past it, or fails reading its own answer, where
        ``/completion`` holds it."""
        try:
            reply = self.client.post(chatpayload.PATH, CHAT_SCHEMA_PROBE)
            content = (
                chatparse.completion(reply.json(), self.client.label, None).text
                if reply.ok
                else None
            )
        except (UpstreamError, ValueError):
            content = None
        return isinstance(content, str) and content.strip() == '"ok"'

    def _detect_afresh(self) -> ServerFacts:
        facts, slots = Detector(self.client, self.tokens, self.templates, self.reasoning).detect()
        self._facts = facts
        self._schemas = None  # a server found afresh is asked afresh
        self.admission.report(slots, queues=not facts.kind.legacy)
        logger.info(
            "upstream %s is %s serving %s; chat template %s",
            self.client.base_url,
            facts.kind.name,
            facts.model,
            facts.template_name,
        )
        return facts
