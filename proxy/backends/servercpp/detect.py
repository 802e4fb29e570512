"""What kind of server answers, and how chats reach it: asked once on (re)connecting."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from proxy.backends.servercpp import embedding, fimprompt, gguffile
from proxy.backends.servercpp.card import card_of
from proxy.backends.servercpp.chattemplate import ChatTemplate
from proxy.backends.servercpp.embedding import TokenClient
from proxy.backends.servercpp.fimprompt import FimTokens
from proxy.backends.servercpp.kinds import INFILL, ChatLayer, ServerKind, classify
from proxy.backends.servercpp.prompting import TemplateChoice
from proxy.backends.structured import callids
from proxy.backends.wire.client import UpstreamClient
from proxy.core.answers import ModelCard
from proxy.core.errors import UpstreamError, UpstreamUnavailableError

logger = logging.getLogger(__name__)

DETECT_TIMEOUT = 5.0
# words only a template that writes earlier calls back in its family's syntax puts in a
# prompt: the probe call's argument
CALL_WORDS = "oai-proxy probe value"
PLAIN_CHAT = {"messages": [{"role": "user", "content": "x"}]}


@dataclass(frozen=True)
class ServerFacts:
    """What the proxy learned about the server when it (re)connected."""

    kind: ServerKind
    model: str
    template: ChatTemplate  # how the proxy renders a chat that goes its own way
    layer: Optional[ChatLayer] = None  # the server's own chat layer, where chats go if it
    #                                    honours them (None: it has none, or the operator
    #                                    chose a template)
    lazy_grammar: bool = False  # applies a grammar from a trigger word on (current llama.cpp)
    thinking: bool = False  # the proxy tells the thoughts its template's models write from
    #                         their answers (see proxy.backends.structured.reasoning)
    card: ModelCard = field(default_factory=ModelCard)
    media_marker: str = ""  # where an image goes in a prompt (a server that can see)
    fim: Optional[FimTokens] = None  # the model's FIM tokens, where the proxy lays out a gap

    @property
    def template_name(self) -> str:
        if self.layer is None:
            return self.template.name
        return (
            "the server's own (its chat layer)"
            if self.layer.tools
            else f"the server's own (its chat layer; {self.template.name} for tools)"
        )


class Detector:
    """Asks a server what it is: its kind, model, chat template and whether it renders chats
    itself."""

    def __init__(
        self, client: UpstreamClient, tokens: TokenClient, templates: TemplateChoice, reasoning: str
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.templates = templates
        self.reasoning = reasoning

    def detect(self) -> tuple:
        """``(what the server is, how many slots it says it has or None)``."""
        health = self.client.get("/health", timeout=DETECT_TIMEOUT).status_code
        if health == 503:
            raise UpstreamUnavailableError(
                f"{self.client.label} is still loading its model; retry shortly", retry_after=2
            )
        models_status = None
        if health == 404:
            models_status = self.client.get("/v1/models", timeout=DETECT_TIMEOUT).status_code
        kind = classify(health, models_status)
        props = self._get_props(kind)
        layer = (
            self._chat_layer() if self.templates.servers_own and kind.has_props_template else None
        )
        template = self._template(props)
        # an old server names its model by the path it loaded it from
        path = str(props.get("model_path") or self._model_from_list(kind, props))
        model = os.path.basename(str(props.get("model_alias") or path or "servercpp"))
        header = _header(path)
        card = card_of(
            model,
            props,
            self._get_models(kind),
            template,
            header,
            path,
            chat_layer=layer is not None,
            reranks=kind.has_props_template and self._probe_reranking(),
        )
        # lazy grammars came with the Jinja tool-calling work, which added chat_template_caps
        facts = ServerFacts(
            kind,
            model,
            template,
            layer,
            lazy_grammar="chat_template_caps" in props,
            thinking=thinking_of(self.reasoning, template),
            card=card,
            media_marker=str(props.get("media_marker") or ""),
            fim=fimprompt.fim_tokens(header.fields) if header and kind.fills != INFILL else None,
        )
        return facts, _total_slots(props)

    def _chat_layer(self) -> Optional[ChatLayer]:
        """The server's own chat layer, if it renders chats (llama-server, with its Jinja
        templates on or not), and whether its template has tool syntax: the prompt it renders
        for a chat with an earlier call has the call's argument in it (llama.cpp learns a
        family's call syntax from how its template writes calls, and only then forces and
        reads them)."""
        prompt = self._render(tool_chat(callids.template_id(callids.LONG_ID)))
        if prompt is None:
            # without its Jinja templates (``--no-jinja``) llama-server still renders chats,
            # by the templates it has built in, but never one with tools
            return ChatLayer(tools=False) if self._render(PLAIN_CHAT) is not None else None
        return ChatLayer(
            tools=CALL_WORDS in prompt, short_ids=self._render(tool_chat(callids.LONG_ID)) is None
        )

    def _probe_reranking(self) -> bool:
        """Whether the server was started with ``--reranking``: asked by a body without a
        query, which a reranker refuses as such and any other server as a route it does not
        serve."""
        try:
            reply = self.client.post(embedding.PROBE_PATH, embedding.PROBE, timeout=DETECT_TIMEOUT)
        except UpstreamError:
            return False
        return reply.status_code == 400

    def _render(self, chat: dict) -> Optional[str]:
        """The prompt the server renders for ``chat`` (with its tools) itself: llama-server
        with its Jinja templates on does (``/apply-template``); without them, or before that
        route, it refuses (``None``)."""
        try:
            reply = self.client.post("/apply-template", chat, timeout=DETECT_TIMEOUT)
            prompt = reply.json().get("prompt") if reply.ok else None
        except (UpstreamError, ValueError, AttributeError):
            return None
        return prompt if isinstance(prompt, str) else None

    def _template(self, props: dict) -> ChatTemplate:
        server = {
            "server_template": props.get("chat_template") or None,
            "bos_token": props.get("bos_token") or "",
            "eos_token": props.get("eos_token") or "",
        }
        try:
            return self.templates.build(**server, adds_bos=self._adds_bos(server))
        except ValueError as exc:
            logger.error(
                "the upstream's chat template cannot be rendered by the proxy (%s); "
                "the chats it renders itself use the historic template",
                exc,
            )
            return self.templates.build()

    def _adds_bos(self, server: dict) -> bool:
        """Whether the server's tokenizer puts BOS before a prompt itself (the model's
        ``add_bos_token``): a prompt's tokens with and without its special tokens differ."""
        if not server["server_template"] or not server["bos_token"]:
            return True
        try:
            plain = self.tokens.token_ids("x")
            special = self.tokens.token_ids("x", add_special=True)
        except UpstreamError:
            return True
        return len(special) > len(plain)

    def _get_props(self, kind: ServerKind) -> dict:
        """What the server says of itself: a current one's ``/props``; an old one's
        ``/model.json``, the generation settings of its first slot (its model, and the
        context each slot gives a conversation), as a current one's ``/props`` tells them
        under ``default_generation_settings``."""
        response = self.client.get(
            "/props" if kind.has_props_template else "/model.json", timeout=DETECT_TIMEOUT
        )
        try:
            body = response.json() if response.ok else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            return {}
        return body if kind.has_props_template else {"default_generation_settings": body}

    def _get_models(self, kind: ServerKind) -> dict:
        """What a current server's ``/v1/models`` says of its model (``meta``: its context,
        parameters, size, file type)."""
        if not kind.has_props_template:
            return {}
        response = self.client.get("/v1/models", timeout=DETECT_TIMEOUT)
        try:
            meta = response.json()["data"][0].get("meta")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _model_from_list(self, kind: ServerKind, props: dict) -> str:
        """The model's name from an old server: ``/model.json`` (PowerInfer), ``/v1/models``."""
        if kind.name == "powerinfer":
            return str(props.get("default_generation_settings", {}).get("model") or "")
        response = self.client.get("/v1/models", timeout=DETECT_TIMEOUT)
        try:
            return response.json()["data"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            return ""


def tool_chat(call_id: str) -> dict:
    """The chat of :func:`proxy.backends.structured.callids.probe`, its call's argument in
    words no template writes of its own."""
    chat = callids.probe(call_id)
    chat["tools"][0]["function"]["parameters"] = {
        "type": "object",
        "properties": {"value": {"type": "string"}},
    }
    chat["messages"][1]["tool_calls"][0]["function"]["arguments"] = '{"value": "%s"}' % CALL_WORDS
    return chat


def _header(path: str) -> Optional[gguffile.GGUFFile]:
    """The header of the server's model file, when it is on this machine and readable."""
    if not path or not os.access(path, os.R_OK):
        return None
    try:
        return gguffile.read(path)
    except ValueError as exc:
        logger.info("the model file %s cannot be read: %s", path, exc)
        return None


def _total_slots(props: dict) -> Optional[int]:
    total = props.get("total_slots")
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def thinking_of(reasoning: str, template: ChatTemplate) -> Optional[bool]:
    """Whether the proxy tells the thoughts of the template's models from their answers."""
    return not (reasoning == "none" or (reasoning == "auto" and not template.thinks))
