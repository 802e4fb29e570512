"""OpenAI chat completions (``POST /v1/chat/completions``), both ways.

Streams go role delta → content (and reasoning, tool-call) deltas → one chunk with the
``finish_reason`` per choice → a usage chunk when ``stream_options.include_usage`` asks →
``data: [DONE]``; every chunk carries the one id of the answer.

The answer is the gateway's own, in text: a body that asks for audio output (``modalities``,
``audio``) is refused by the field's name rather than billed for audio never carried back.

``web_search_options`` asks for the gateway's web search, which the model then calls as
tools the gateway runs (:mod:`proxy.tools.turns`); where the answer names a page it found,
its message carries a ``url_citation`` annotation (a stream's, in a delta before the one
that finishes its choice).
"""

from __future__ import annotations

from typing import Any, Sequence

import orjson

from proxy.config.catalog import WEB
from proxy.core.answers import Completion
from proxy.core.events import (
    Finish,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolRan,
    UsageReport,
)
from proxy.core.fields import Fields, effort, template_kwargs, text_only, tool_call
from proxy.core.tooluse import ToolUse, cited, sources_of
from proxy.core.types import Message, ToolCall, Verbatim, amended
from proxy.dialects.dialect import Ask, Content, Limits
from proxy.dialects.openai import answer, request
from proxy.dialects.openai.answer import error_body, headers  # noqa: F401 (the dialect's)
from proxy.dialects.openai.stream import ChoicesStream, patient  # noqa: F401 (the dialect's)

API = "chat"  # a body of this API, as a server of it takes it whole (Verbatim)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
READ = request.READ | {
    "messages",
    "logprobs",
    "top_logprobs",
    "enable_thinking",
    "chat_template_kwargs",
    "reasoning_effort",
    "web_search_options",
}


def new_id() -> str:
    return answer.new_id("chatcmpl")


def parse(body: Any, limits: Limits) -> Ask:
    """Read a ``/v1/chat/completions`` body (one that asks for audio output refused)."""
    fields = Fields(body)
    text_only(fields)
    messages = _messages(fields, limits)
    logprobs = None
    if fields.boolean("logprobs"):
        logprobs = fields.integer("top_logprobs", 0, 20) or 0
    elif fields.raw("top_logprobs") is not None:
        fields.integer("top_logprobs", 0, 20)
    thinking = fields.boolean("enable_thinking")
    variables = template_kwargs(
        fields, thinking=thinking, effort=effort(fields, "reasoning_effort")
    )
    generation = request.generation_request(
        fields, limits, READ, messages=messages, logprobs=logprobs, template_kwargs=variables
    )
    search = fields.object("web_search_options")
    own = Verbatim(API, body, messages=generation.messages, tools=generation.tools)
    generation = amended(
        generation, verbatim=own, uses=(_search_use(search),) if search is not None else ()
    )
    return request.ask(fields, (generation,), limits)


def _search_use(options: Fields) -> ToolUse:
    """``web_search_options``: the gateway's web search, whose pages may be opened too."""
    if options.raw("user_location") is not None:
        raise options.fail(
            "user_location", "is not read here: this gateway's web search takes no location"
        )
    size = options.string("search_context_size")
    if size not in (None, "medium"):
        raise options.fail(
            "search_context_size",
            "must be medium here: a search gives the model as many hits as the gateway's "
            "operator sets (max_results)",
        )
    return ToolUse(WEB, "web", kind="web_search_options", field="web_search_options")


def _messages(fields: Fields, limits: Limits) -> tuple:
    raw = fields.raw("messages")
    if not isinstance(raw, list):
        raise fields.fail("messages", "must be a non-empty list of messages")
    if not raw:
        raise fields.fail("messages", "must not be empty")
    return tuple(_message(Fields(item, f"messages[{i}]."), i, limits) for i, item in enumerate(raw))


def _message(fields: Fields, index: int, limits: Limits) -> Message:
    role = fields.string("role")
    if role is None:
        raise fields.fail("role", "is required")
    if role not in ROLES:
        raise fields.fail("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    tool_calls = fields.raw("tool_calls")
    if tool_calls is not None and not (role == "assistant" and isinstance(tool_calls, list)):
        raise fields.fail("tool_calls", "must be a list, on assistant messages only")
    calls = tuple(
        tool_call(call, f"call{index}x{j}") for j, call in enumerate(fields.objects("tool_calls"))
    )
    content = _content(fields, Content(limits), allow_null=role == "assistant" and bool(tool_calls))
    reasoning = fields.string("reasoning_content") if role == "assistant" else None
    return Message(
        role=role,
        content=content.text,
        name=fields.string("name"),
        tool_calls=calls,
        tool_call_id=fields.string("tool_call_id"),
        reasoning=reasoning or "",
        images=tuple(content.images),
        sounds=tuple(content.sounds),
    )


def _content(fields: Fields, content: Content, *, allow_null: bool) -> Content:
    raw = fields.raw("content")
    if isinstance(raw, str):
        content.add_text(raw)
        return content
    if raw is None:
        if allow_null:
            return content
        raise fields.fail("content", "is required")
    if not isinstance(raw, list):
        raise fields.fail("content", "must be a string or a list of content parts")
    for j, part in enumerate(raw):
        part_fields = Fields(part, f"{fields.prefix}content[{j}].")
        kind = part_fields.string("type")
        if kind in ("text", "input_text"):
            text = part_fields.string("text")
            if text is None:
                raise part_fields.fail("text", "is required")
            content.add_text(text)
        elif kind == "image_url":
            _image(part_fields, content)
        elif kind == "input_audio":
            _sound(part_fields, content)
        else:
            raise part_fields.fail(
                "type", f"{kind!r} is not supported; text, image_url and input_audio parts are"
            )
    return content


def _sound(fields: Fields, content: Content) -> None:
    """An ``input_audio`` part: ``{data, format}``, the format as the audio's bytes say it
    (the engines read those, whatever the name)."""
    audio = fields.object("input_audio")
    if audio is None:
        raise fields.fail("input_audio", "is required")
    data = audio.string("data")
    if data is None:
        raise audio.fail("data", "is required")
    if audio.string("format") is None:
        raise audio.fail("format", "is required")
    content.add_sound(data, f"{audio.prefix}data")


def _image(fields: Fields, content: Content) -> None:
    """An ``image_url`` part: ``{url, detail}``, or the URL alone as some clients send it."""
    image_url = fields.raw("image_url")
    if isinstance(image_url, str):
        content.add_url(image_url, f"{fields.prefix}image_url")
        return
    url = fields.object("image_url")
    if url is None:
        raise fields.fail("image_url", "is required")
    content.add_url(url.required("url"), f"{url.prefix}url")


# -- whole answers ----------------------------------------------------------------------------


def render(ask: Ask, id: str, model: str, completions: Sequence[Completion]) -> dict:
    """A ``chat.completion`` body with one choice per completion."""
    body = {
        "id": id,
        "object": "chat.completion",
        "created": answer.now(),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": _message_body(c.text, c.tool_calls, c.reasoning, sources_of(c.runs)),
                "logprobs": answer.chat_logprobs(c.logprobs) if c.logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(completions)
        ],
        "usage": answer.usage_body(answer.total_usage(completions)),
    }
    return answer.extras(body, completions)


def _message_body(
    text: str, tool_calls: Sequence[ToolCall], reasoning: str, sources: Sequence = ()
) -> dict:
    message = {"role": "assistant", "content": text if text or not tool_calls else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    annotations = _annotations(text, sources)
    if annotations:
        message["annotations"] = annotations
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in tool_calls
        ]
    return message


def _annotations(text: str, sources: Sequence) -> list:
    """A ``url_citation`` where the text names a page the web search found."""
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "start_index": start,
                "end_index": end,
                "url": source.url,
                "title": source.title,
            },
        }
        for start, end, source in cited(text, sources)
    ]


# -- streams ----------------------------------------------------------------------------------


def stream(ask: Ask, id: str, model: str) -> "ChatStream":
    return ChatStream(ask, id, model)


TEXT_FIELD = b'"delta":{"content":'
TEXT_TAIL = b'},"logprobs":null,"finish_reason":null}]}\n\n'


class ChatStream(ChoicesStream):
    """Chat completion chunks from the core's events; each choice begins with its role."""

    object = "chat.completion.chunk"
    empty = {"delta": {}, "logprobs": None, "finish_reason": None}

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        super().__init__(ask, id, model)
        # a choice's text is kept only where the web search may find pages it cites
        self.citing = any(use.server == WEB for request in ask.requests for use in request.uses)
        self.written: list = []
        self.sources: list = []
        self.text_head = b""  # the bytes each text chunk of the choice begins with

    def text(self, event: TextDelta, out: list) -> None:
        """Most tokens: the bytes of the choice's text chunk, its text written into them,
        made once a choice (a call less under every token)."""
        if not self.begun:
            self._begin(out)
        if self.citing:
            self.written.append(event.text)
        if event.logprobs or self.extras:
            out.append(self._delta({"content": event.text}, event.logprobs))
            return
        head = self.text_head
        if not head:
            head = self.text_head = self.head(TEXT_FIELD)
        out.append(head + orjson.dumps(event.text) + TEXT_TAIL)

    def reasoning(self, event: ReasoningDelta, out: list) -> None:
        self._begin(out)
        out.append(self._delta({"reasoning_content": event.text}))

    def call_started(self, event: ToolCallStart, out: list) -> None:
        self._begin(out)
        out.append(
            self._delta(
                {
                    "tool_calls": [
                        {
                            "index": event.index,
                            "id": event.id,
                            "type": "function",
                            "function": {"name": event.name, "arguments": ""},
                        }
                    ]
                }
            )
        )

    def call_arguments(self, event: ToolCallDelta, out: list) -> None:
        out.append(
            self._delta(
                {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
            )
        )

    def prompt_counted(self, event: PromptCounted, out: list) -> None:
        self._begin(out)

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self._begin(out)
        self.usage += event.usage

    def tool_ran(self, event: ToolRan, out: list) -> None:
        self.sources += event.run.sources

    def finished(self, event: Finish, out: list) -> None:
        self._begin(out)
        annotations = _annotations("".join(self.written), self.sources)
        if annotations:
            out.append(self._delta({"annotations": annotations}))
        self.written, self.sources, self.text_head = [], [], b""
        out.append(self._delta({}, finish_reason=event.reason))
        self.next_choice()

    def _begin(self, out: list) -> None:
        if not self.begun:
            self.begun = True
            out.append(self._delta({"role": "assistant", "content": ""}))

    def _delta(self, delta: dict, logprobs: tuple = (), finish_reason=None) -> dict:
        return self.chunk(
            {
                "delta": delta,
                "logprobs": answer.chat_logprobs(logprobs) if logprobs else None,
                "finish_reason": finish_reason,
            }
        )
