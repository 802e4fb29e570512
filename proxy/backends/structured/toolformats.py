"""How each model family is told about tools and writes its calls: render and parse, pure.

A format describes the tools in the system message, writes an assistant's earlier calls and
the tools' results back into the chat, and reads calls out of what the model generated:

hermes    Hermes / Qwen (chatml): ``<tool_call>{"name": …, "arguments": {…}}</tool_call>``
llama3    Llama 3.1+: a bare ``{"name": …, "parameters": {…}}`` (after ``<|python_tag|>``)
mistral   Mistral: ``[TOOL_CALLS][{"name": …, "arguments": {…}}, …]``
chatglm3  ChatGLM3: the name on its own line, then ``tool_call(key=value)`` in a fence
plain     any other template: the hermes convention, explained in plain words

Model output is data: calls are read with :func:`json.loads` (ChatGLM3's keyword literals
with :func:`ast.literal_eval`), never run. Text that is not a well-formed call to an offered
tool stays content.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Callable, Collection, Iterator, Optional, Sequence

from proxy.backends.structured import chatglm3
from proxy.core.types import ToolCall

PLAIN_INSTRUCTIONS = (
    "You may call the functions below. To call one, answer with nothing but\n"
    '<tool_call>{"name": <function name>, "arguments": <arguments as a JSON object>}'
    "</tool_call>\n(one such block per call). Otherwise answer normally."
)


PYTHON_TAG = "<|python_tag|>"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _function(tool: dict) -> dict:
    function = tool.get("function") if isinstance(tool, dict) else None
    return function if isinstance(function, dict) else {}


def _signature(tool: dict) -> dict:
    function = _function(tool)
    return {
        "name": function.get("name"),
        "description": function.get("description", ""),
        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _arguments(call: dict) -> object:
    """An OpenAI call's arguments as a value (they travel as JSON text)."""
    raw = _function(call).get("arguments")
    try:
        return json.loads(raw) if isinstance(raw, str) else (raw or {})
    except ValueError:
        return raw


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _tagged(instructions: str) -> Callable[[Sequence[dict]], str]:
    """Describe tools as one JSON signature a line inside ``<tools>`` tags (Hermes, plain)."""

    def describe(tools: Sequence[dict]) -> str:
        lines = "\n".join(_compact(_signature(tool)) for tool in tools)
        return f"{instructions}\n<tools>\n{lines}\n</tools>"

    return describe


def _listed(before: str, after: str = "", indent: Optional[int] = None):
    """Describe tools as one JSON list between ``before`` and ``after`` (Llama, Mistral, GLM)."""

    def describe(tools: Sequence[dict]) -> str:
        signatures = [{"type": "function", "function": _signature(tool)} for tool in tools]
        listed = json.dumps(signatures, ensure_ascii=False, indent=indent)
        return f"{before}{listed}{after}"

    return describe


@dataclass(frozen=True)
class ToolFormat:
    """One family's conventions. A call is a JSON object ``{name, <arguments_key>}`` between
    ``opener`` and ``closer`` (a bare object when there is no opener); a ``listed`` format
    holds several calls in one JSON list."""

    name: str
    describe: Callable[[Sequence[dict]], str]
    opener: str = ""
    closer: str = ""
    arguments_key: str = "arguments"
    listed: bool = False
    result_role: str = "user"  # the role a tool's result is given back in
    result_wrapper: tuple = ("", "")
    result_json: bool = False  # the result goes in as {"content": …}
    starter: str = ""  # what else may open a call (Llama's python tag)
    call_ids: bool = False  # its models may write a call's id after its arguments

    @property
    def markers(self) -> tuple:
        """The text that marks a call: a model's tokenizer may hold it as special tokens,
        which a server leaves out of what it sends back unless asked to keep them."""
        return tuple(marker for marker in (self.opener, self.closer, self.starter) if marker)

    def system_prompt(self, tools: Sequence[dict]) -> str:
        return self.describe(tools)

    def render_call(self, calls: Sequence[dict]) -> str:
        """An assistant's earlier calls, as the model would have written them."""
        objects = [
            {"name": _function(call).get("name"), self.arguments_key: _arguments(call)}
            for call in calls
        ]
        if self.listed:
            return f"{self.opener}{_compact(objects)}{self.closer}"
        return "\n".join(f"{self.opener}{_compact(o)}{self.closer}" for o in objects)

    def render_result(
        self, content: str, name: Optional[str] = None, call_id: Optional[str] = None
    ) -> str:
        before, after = self.result_wrapper
        if self.result_json:
            content = json.dumps({"content": content}, ensure_ascii=False)
        return f"{before}{content}{after}"

    def parse(self, text: str, names: Collection[str], cut: bool = False) -> tuple:
        """``(content, calls)`` read from a whole answer; no calls if any is malformed.

        ``cut``: the token limit ended the answer, perhaps inside a call: the calls written
        whole before it count, and the unfinished one is dropped.
        """
        if self.opener:
            start = end = text.find(self.opener)
        else:  # a bare call opens the answer: nothing before it is content
            start, end = 0, _json_start(text)
        if end < 0:
            return text, ()
        calls = self._calls(text[end:], names, cut)
        if calls is None:
            return text, ()
        return text[:start], calls

    def _calls(self, text: str, names: Collection[str], cut: bool) -> Optional[tuple]:
        """The calls of ``text``; ``None`` when it holds none that can be read."""
        objects = []
        blocks = list(self._blocks(text))
        for index, block in enumerate(blocks):
            try:
                value = json.loads(block)
            except (ValueError, RecursionError):
                if not (cut and index == len(blocks) - 1):
                    return None
                objects += _whole_objects(block) if self.listed else []
                break
            objects += value if self.listed and isinstance(value, list) else [value]
        if not objects and not cut:
            return None
        calls = []
        for item in objects:
            if not (isinstance(item, dict) and item.get("name") in names):
                return None
            arguments = item.get(self.arguments_key, {})
            if not isinstance(arguments, dict):
                return None
            own_id = item.get("id") if self.call_ids else None
            calls.append(
                ToolCall(
                    own_id if isinstance(own_id, str) and own_id else new_call_id(),
                    item["name"],
                    _compact(arguments),
                )
            )
        return tuple(calls)

    def _blocks(self, text: str) -> Iterator[str]:
        """The JSON text of each call; any text after the calls is a block that fails."""
        if not self.opener:  # bare objects, one after another
            decoder, rest = json.JSONDecoder(), text.strip()
            while rest:
                try:
                    _, end = decoder.raw_decode(rest)
                except ValueError:
                    yield rest
                    return
                yield rest[:end]
                rest = rest[end:].lstrip().lstrip(";").lstrip()
            return
        for piece in text.split(self.opener)[1:]:
            body, _, after = piece.partition(self.closer) if self.closer else (piece, "", "")
            yield body  # the last may be unclosed: it counts if its JSON is whole
            if after.strip():
                yield after


def _whole_objects(listed: str) -> list:
    """The objects written whole at the start of a JSON list that was cut off."""
    decoder, objects = json.JSONDecoder(), []
    rest = listed.lstrip().removeprefix("[")
    while True:
        rest = rest.lstrip().removeprefix(",").lstrip()
        try:
            value, end = decoder.raw_decode(rest)
        except (ValueError, RecursionError):
            return objects
        objects.append(value)
        rest = rest[end:]


def _json_start(text: str) -> int:
    """Where a bare JSON call begins: first in the answer, or after Llama's python tag."""
    stripped = text.lstrip()
    if stripped.startswith(PYTHON_TAG):
        return text.index(PYTHON_TAG) + len(PYTHON_TAG)
    return len(text) - len(stripped) if stripped.startswith("{") else -1


@dataclass(frozen=True)
class ChatGLM3Format(ToolFormat):
    """ChatGLM3 writes the name on one line and its arguments in a fence below."""

    def render_call(self, calls: Sequence[dict]) -> str:
        return "\n".join(
            chatglm3.render(
                ToolCall("", _function(call).get("name") or "", _compact(_arguments(call)))
            )
            for call in calls
        )

    def parse(self, text: str, names: Collection[str], cut: bool = False) -> tuple:
        """A call whose arguments do not read as an object stays text, as in every format
        (ChatGLM3 writes one call: a cut one is no call)."""
        call = chatglm3.parse(text.strip(), names)
        if call is None or not call.arguments.startswith("{"):
            return text, ()
        return "", (call,)


HERMES_INSTRUCTIONS = (
    "You are a function calling AI model. You may call one or more functions to assist with "
    "the user query. The functions are listed within <tools></tools> XML tags. For each call "
    "return a JSON object with the function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>"
)
LLAMA3_INSTRUCTIONS = (
    "Given the following functions, please respond with a JSON for a function call with its "
    'proper arguments that best answers the given prompt.\nRespond in the format {"name": '
    'function name, "parameters": dictionary of argument name and its value}. Do not use '
    "variables.\n\n"
)

FORMATS = {
    "hermes": ToolFormat(
        "hermes",
        _tagged(HERMES_INSTRUCTIONS),
        "<tool_call>",
        "</tool_call>",
        result_wrapper=("<tool_response>\n", "\n</tool_response>"),
    ),
    "llama3": ToolFormat(
        "llama3",
        _listed(LLAMA3_INSTRUCTIONS, indent=2),
        arguments_key="parameters",
        result_role="tool",
        starter=PYTHON_TAG,
    ),
    "mistral": ToolFormat(
        "mistral",
        _listed("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
        "[TOOL_CALLS]",
        listed=True,
        result_json=True,
        call_ids=True,
        result_wrapper=("[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
    ),
    "chatglm3": ChatGLM3Format(
        "chatglm3",
        _listed(
            "Answer the following questions as best as you can. You have access to the following "
            "tools:\n",
            indent=4,
        ),
        result_role="observation",
    ),
    "plain": ToolFormat(
        "plain",
        _tagged(PLAIN_INSTRUCTIONS),
        "<tool_call>",
        "</tool_call>",
        result_wrapper=("Tool result: ", ""),
    ),
}


def format_of_template(source: str) -> str:
    """Guess the call format of a model from its chat template's text."""
    if "<tool_call>" in source:
        return "hermes"
    if "[TOOL_CALLS]" in source:
        return "mistral"
    if PYTHON_TAG in source or "ipython" in source:
        return "llama3"
    if "<|observation|>" in source:
        return "chatglm3"
    return "plain"


def tool_names(tools: Sequence[dict]) -> tuple:
    return tuple(_function(tool).get("name") for tool in tools)


class StreamingToolParser:
    """Pass a streamed answer's text on as it comes, until it may be a tool call.

    Text that cannot begin a call goes out at once; from a possible call opener on, the
    text is withheld and read as calls at the end (or released as content if it is none).
    """

    def __init__(self, tool_format: ToolFormat, names: Collection[str]) -> None:
        self.format = tool_format
        self.names = names
        self._withheld = ""
        self._withholding = False  # a call may have begun: keep everything until the end
        self._sent_any = False

    def feed(self, text: str) -> str:
        """The part of ``text`` that is certainly content, to send now."""
        if self._withholding:
            self._withheld += text
            return ""
        self._withheld += text
        start = self._call_start()
        if start is not None:
            self._withholding = True
            out, self._withheld = self._withheld[:start], self._withheld[start:]
            return self._sent(out)
        keep = self._possible_opener_tail()
        out, self._withheld = (
            self._withheld[: len(self._withheld) - keep],
            self._withheld[len(self._withheld) - keep :],
        )
        return self._sent(out)

    def close(self, cut: bool = False) -> tuple:
        """``(remaining content, calls)`` at the end of the answer (``cut``: by the token
        limit, see :meth:`ToolFormat.parse`)."""
        withheld, self._withheld = self._withheld, ""
        if not self._withholding:
            return withheld, ()
        return self.format.parse(withheld, self.names, cut)

    def _sent(self, text: str) -> str:
        self._sent_any = self._sent_any or bool(text.strip())
        return text

    def _call_start(self) -> Optional[int]:
        opener = self.format.opener
        if opener:
            index = self._withheld.find(opener)
            return None if index < 0 else index
        if self._sent_any:  # bare-JSON formats call at the start of the answer only
            return None
        stripped = self._withheld.lstrip()
        if stripped.startswith(("{", PYTHON_TAG)) or (
            self.format.name == "chatglm3" and stripped.split("\n", 1)[0].strip() in self.names
        ):
            return 0
        return None

    def _possible_opener_tail(self) -> int:
        """How many trailing characters might be the start of a call: withhold them."""
        opener = self.format.opener
        if opener:
            for size in range(min(len(opener) - 1, len(self._withheld)), 0, -1):
                if opener.startswith(self._withheld[-size:]):
                    return size
            return 0
        if self._sent_any:
            return 0
        stripped = self._withheld.lstrip()
        if (
            not stripped
            or PYTHON_TAG.startswith(stripped)
            or (
                self.format.name == "chatglm3"
                and "\n" not in stripped
                and any(name.startswith(stripped.strip()) for name in self.names)
            )
        ):
            return len(self._withheld)
        return 0
