"""The Responses API's stream: every event typed and numbered (``sequence_number``), from
``response.created`` to ``response.completed`` (or ``response.incomplete``, or
``response.failed`` when the stream fails after its first byte)."""

from __future__ import annotations

import time
from typing import Optional

import orjson

from proxy.core.answers import Served, Usage
from proxy.core.errors import ProxyError
from proxy.core.events import (
    Extras,
    Finish,
    Passed,
    PromptCounted,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    ToolRan,
    ToolsListed,
)
from proxy.dialects.dialect import Ask
from proxy.dialects.responses.answer import (
    call_item,
    citations,
    message_item,
    reasoning_item,
    response_object,
    run_items,
    status_of,
)
from proxy.dialects.responses.passing import passed
from proxy.dialects.responses.request import new_id
from proxy.dialects.streaming import BlockStream, NamedEvents

# what an item of the gateway's work holds while it is in progress, by its type
IN_PROGRESS = {
    "mcp_list_tools": {"tools": []},
    "mcp_call": {"status": "in_progress", "arguments": "", "output": None, "error": None},
    "web_search_call": {"status": "in_progress"},
}


class ResponsesStream(NamedEvents, BlockStream):
    """The Responses API's event sequence from the core's events, each event numbered; the
    final response object is :attr:`kept` before its event goes out (to store it)."""

    def __init__(self, ask: Ask, id: str, model: str) -> None:
        self.notes = ask.notes
        self.id = id
        self.model = model
        self.created = int(time.time())
        self.sequence = 0
        self.started = False
        self.output: list = []  # the items so far, the open one last
        self.open: Optional[str] = None  # the open item's type
        self.texts: list = []  # the open item's text (or arguments)
        self.usage = Usage()
        self.text_head = (-1, b"")  # (output index, what its text deltas' bytes begin with)
        self.sources: list = []  # the pages the web search found, which the text may cite
        self.timings: Optional[dict] = None  # the engine's, told last (llama-server's)
        self.timed = False  # they are still to go out with the next delta

    def write(self, events: list) -> list:
        """The payloads of the events; or, once the first events are the upstream's own
        lines (:class:`Passed`), those lines as it wrote them, the model renamed."""
        if not self.started and not self.passed:
            told = 0
            while told < len(events) and type(events[told]) is Served:
                self.told_served(events[told], [])
                told += 1
            events = events[told:]
            self.passed = bool(events) and type(events[0]) is Passed
        if self.passed:
            return [passed(event.lines, self.model) for event in events if type(event) is Passed]
        return super().write(events)

    def failure(self, error: ProxyError) -> list:
        self.output = [item for item in self.output if item.get("status") != "in_progress"]
        return [
            self._numbered(
                {
                    "type": "response.failed",
                    "response": response_object(
                        self.notes,
                        self.id,
                        self.model,
                        self.created,
                        self.output,
                        None,
                        "failed",
                        error,
                    ),
                }
            )
        ]

    def text(self, event: TextDelta, out: list) -> None:
        """Most tokens: the bytes of the numbered delta event (``encode_named``'s), its text
        written in; what begins the response or its message is asked for only where it has
        not begun (no call under every token)."""
        if not self.started:
            self._start(out)
        if event.text:
            if self.open != "message":
                self._open_message(out)
            self.texts.append(event.text)
            item = len(self.output) - 1
            if self.text_head[0] != item:
                self.text_head = (
                    item,
                    b'event: response.output_text.delta\ndata: {"type":'
                    b'"response.output_text.delta","item_id":'
                    + orjson.dumps(self.output[-1]["id"])
                    + b',"output_index":%d,"content_index":0,"delta":' % item,
                )
            if self.timed:
                out.append(self._timed_delta(event.text, item))
                return
            out.append(
                self.text_head[1]
                + orjson.dumps(event.text)
                + b',"logprobs":[],"sequence_number":%d}\n\n' % self.sequence
            )
            self.sequence += 1

    def _timed_delta(self, text: str, item: int) -> dict:
        self.timed = False
        return self._numbered(
            {
                "type": "response.output_text.delta",
                "item_id": self.output[-1]["id"],
                "output_index": item,
                "content_index": 0,
                "delta": text,
                "logprobs": [],
                "timings": self.timings,
            }
        )

    def told_extras(self, event: Extras, out: list) -> None:
        """llama-server's own fields, as its Responses stream tells them: the prompt's
        progress in a ``response.in_progress`` of its own, the timings on the next delta and
        on the last event."""
        self._start(out)
        told = event.fields
        if "timings" in told:
            self.timings, self.timed = told["timings"], True
        if "prompt_progress" in told:
            progress = self._response("in_progress", None)
            out.append(
                self._numbered(
                    {
                        "type": "response.in_progress",
                        "response": progress,
                        "prompt_progress": told["prompt_progress"],
                    }
                )
            )

    def reasoning(self, event: ReasoningDelta, out: list) -> None:
        self._start(out)
        self._open_reasoning(out)
        self.texts.append(event.text)
        out.append(self._part_event("response.reasoning_text.delta", delta=event.text))
        if self.notes.summary:
            out.append(
                self._item_event(
                    "response.reasoning_summary_text.delta", summary_index=0, delta=event.text
                )
            )

    def call_started(self, event: ToolCallStart, out: list) -> None:
        self._start(out)
        self._close(out)
        self._add(call_item(new_id("fc"), event.id, event.name, "", "in_progress"), out)

    def call_arguments(self, event: ToolCallDelta, out: list) -> None:
        self.texts.append(event.arguments)
        out.append(
            self._item_event("response.function_call_arguments.delta", delta=event.arguments)
        )

    def tools_listed(self, event: ToolsListed, out: list) -> None:
        self._start(out)
        self._close(out)
        for item in run_items(event.listing):
            self._hosted(item, out)

    def tool_ran(self, event: ToolRan, out: list) -> None:
        self._start(out)
        self._close(out)
        self.sources += event.run.sources
        for item in run_items(event.run):
            self._hosted(item, out)

    def prompt_counted(self, event: PromptCounted, out: list) -> None:
        self._start(out)

    def finished(self, event: Finish, out: list) -> None:
        self._start(out)
        status = status_of(event.reason)
        if not self.output:  # nothing said: an empty message, as a whole response has
            self._open_message(out)
        self._close(out, status)
        response = self._response(status, self.usage)
        if self.kept is not None:
            self.kept(response)
        last = {"type": f"response.{status}", "response": response}
        if self.timings is not None:
            last["timings"] = self.timings
        out.append(self._numbered(last))

    def _start(self, out: list) -> None:
        if self.started:
            return
        self.started = True
        for kind in ("response.created", "response.in_progress"):
            out.append(
                self._numbered({"type": kind, "response": self._response("in_progress", None)})
            )

    # -- items ---------------------------------------------------------------------------------

    def _open_message(self, out: list) -> None:
        if self.open == "message":
            return
        self._close(out)
        self._add(message_item(new_id("msg"), "", "in_progress"), out)
        out.append(
            self._part_event(
                "response.content_part.added",
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        )

    def _open_reasoning(self, out: list) -> None:
        if self.open == "reasoning":
            return
        self._close(out)
        item = reasoning_item(new_id("rs"), "", False, "in_progress")
        self._add(item, out)
        out.append(
            self._part_event(
                "response.content_part.added", part={"type": "reasoning_text", "text": ""}
            )
        )
        if self.notes.summary:
            out.append(
                self._item_event(
                    "response.reasoning_summary_part.added",
                    summary_index=0,
                    part={"type": "summary_text", "text": ""},
                )
            )

    def _hosted(self, done: dict, out: list) -> None:
        """An item of the gateway's work, done already: added in progress, its events,
        then done, as OpenAI's servers stream theirs."""
        kind = done["type"]
        added = {**done, **IN_PROGRESS.get(kind, {})}
        self._add(added, out)
        self.open = None
        if kind == "mcp_call":
            out.append(self._item_event("response.mcp_call.in_progress"))
            out.append(
                self._item_event("response.mcp_call_arguments.delta", delta=done["arguments"])
            )
            out.append(
                self._item_event("response.mcp_call_arguments.done", arguments=done["arguments"])
            )
            out.append(self._item_event(f"response.mcp_call.{done['status']}"))
        elif kind == "mcp_list_tools":
            out.append(self._item_event("response.mcp_list_tools.in_progress"))
            ended = "failed" if done["error"] else "completed"
            out.append(self._item_event(f"response.mcp_list_tools.{ended}"))
        elif kind == "web_search_call":
            for stage in ("in_progress", "searching", "completed"):
                out.append(self._item_event(f"response.web_search_call.{stage}"))
        self.output[-1] = done
        out.append(
            self._numbered(
                {
                    "type": "response.output_item.done",
                    "output_index": len(self.output) - 1,
                    "item": done,
                }
            )
        )

    def _add(self, item: dict, out: list) -> None:
        self.output.append(item)
        self.open = item["type"]
        self.texts = []
        out.append(
            self._numbered(
                {
                    "type": "response.output_item.added",
                    "output_index": len(self.output) - 1,
                    "item": dict(item),
                }
            )
        )

    def _close(self, out: list, status: str = "completed") -> None:
        """End the open item: its done events, then ``output_item.done`` with it whole."""
        if self.open is None:
            return
        text = "".join(self.texts)
        item = self.output[-1]
        if self.open == "message":
            done = message_item(item["id"], text, status, citations(text, self.sources))
            out.append(self._part_event("response.output_text.done", text=text, logprobs=[]))
            out.append(self._part_event("response.content_part.done", part=done["content"][0]))
        elif self.open == "reasoning":
            done = reasoning_item(item["id"], text, self.notes.summary)
            out.append(self._part_event("response.reasoning_text.done", text=text))
            out.append(
                self._part_event(
                    "response.content_part.done", part={"type": "reasoning_text", "text": text}
                )
            )
            if self.notes.summary:
                out.append(
                    self._item_event(
                        "response.reasoning_summary_text.done", summary_index=0, text=text
                    )
                )
                out.append(
                    self._item_event(
                        "response.reasoning_summary_part.done",
                        summary_index=0,
                        part={"type": "summary_text", "text": text},
                    )
                )
        else:
            done = call_item(item["id"], item["call_id"], item["name"], text)
            out.append(
                self._item_event(
                    "response.function_call_arguments.done", arguments=text, name=item["name"]
                )
            )
        self.output[-1] = done
        self.open = None
        out.append(
            self._numbered(
                {
                    "type": "response.output_item.done",
                    "output_index": len(self.output) - 1,
                    "item": done,
                }
            )
        )

    # -- events --------------------------------------------------------------------------------

    def _response(self, status: str, usage: Optional[Usage]) -> dict:
        return response_object(
            self.notes,
            self.id,
            self.model,
            self.created,
            [dict(item) for item in self.output],
            usage,
            status,
        )

    def _item_event(self, kind: str, **fields) -> dict:
        return self._numbered(
            {
                "type": kind,
                "item_id": self.output[-1]["id"],
                "output_index": len(self.output) - 1,
                **fields,
            }
        )

    def _part_event(self, kind: str, **fields) -> dict:
        return self._item_event(kind, content_index=0, **fields)

    def _numbered(self, payload: dict) -> dict:
        payload["sequence_number"] = self.sequence
        self.sequence += 1
        return payload
