"""OpenAI's streams: ``data:`` lines, an error event, then ``data: [DONE]`` (:class:`DataEvents`,
GLM's too), and the chunks of choices chat completions and completions stream
(:class:`ChoicesStream`)."""

from __future__ import annotations

import orjson

from proxy.core.answers import Usage
from proxy.core.errors import ProxyError
from proxy.core.events import Extras, UsageReport, Waiting
from proxy.core.sse import COMMENT, DONE, EVENT_STREAM, encode_event
from proxy.dialects.dialect import Ask
from proxy.dialects.openai.answer import error_body, now, usage_body
from proxy.dialects.streaming import EventRenderer

patient = False  # a stream keeps its client company only while a server starts


class DataEvents:
    """OpenAI's stream framing: ``data:`` lines, an error event, then ``data: [DONE]``."""

    encode = staticmethod(encode_event)
    mimetype = EVENT_STREAM
    end = DONE

    @staticmethod
    def failure(error: ProxyError) -> list:
        return [error_body(error)]


class ChoicesStream(EventRenderer, DataEvents):
    """A stream of chunks, choice after choice, each chunk naming the answer's id, model and
    time; a usage chunk last when ``stream_options.include_usage`` asks for one.

    A subclass says what its chunks hold (:meth:`chunk`) and what each event adds.
    """

    object = ""  # the chunks' ``object``
    empty: dict = {}  # a choice's piece that says nothing

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.created = now()
        self.include_usage = ask.notes.include_usage
        self.index = 0  # the choice being streamed
        self.begun = False  # its first chunk has gone out
        self.usage = Usage()
        self.extras: dict = {}  # the engine's own fields, for the next chunk

    def chunk(self, choice: dict) -> dict:
        """A chunk of the answer, holding ``choice`` of the choice being streamed (and the
        engine's extras told since the last one)."""
        body = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [{"index": self.index, **choice}],
        }
        if self.extras:
            body.update(self.extras)
            self.extras = {}
        return body

    def told_extras(self, event: Extras, out: list) -> None:
        """The engine's own fields, in the next chunk; the prompt's progress in a chunk of
        its own, as it goes (llama-server's ``return_progress``)."""
        self.extras = {**self.extras, **event.fields}
        if "prompt_progress" in event.fields:
            out.append(self.chunk(self.empty))

    def head(self, field: bytes) -> bytes:
        """The framed bytes of a chunk of the choice being streamed, up to ``field``'s value
        (as :meth:`chunk` and :func:`encode_event` make them), for the text that follows
        them in every token's chunk."""
        return (
            b'data: {"id":'
            + orjson.dumps(self.id)
            + b',"object":"'
            + self.object.encode()
            + b'","created":%d,"model":' % self.created
            + orjson.dumps(self.model)
            + b',"choices":[{"index":%d,' % self.index
            + field
        )

    def waiting(self, event: Waiting, out: list) -> None:
        out.append(COMMENT)

    def usage_reported(self, event: UsageReport, out: list) -> None:
        self.usage += event.usage

    def next_choice(self) -> None:
        self.index += 1
        self.begun = False

    def closing(self) -> list:
        """The usage chunk, when asked for."""
        if not self.include_usage:
            return []
        return [
            {
                "id": self.id,
                "object": self.object,
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_body(self.usage),
            }
        ]
