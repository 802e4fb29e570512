"""Chat templates: a chat rendered into the prompt string and stop words a completion server
needs, by the historic shim's flag template (``--chat-prompt``, ``--user-name``, ``--ai-name``,
``--system-name``, ``--stop``, reproduced byte for byte) or a Jinja template. A template that
knows nothing of tools is given them, and the calls and results of earlier turns, in plain
roles, in the words of its models' call format.

Jinja templates run in an immutable sandbox: a template is code, and a bad one must end in a 400
for the request, never in a 500 or an escape from the sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, Mapping, NoReturn, Protocol, Sequence

import jinja2
import jinja2.ext
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from proxy.backends.structured import callids, toolformats
from proxy.backends.structured.callids import template_id
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Message, ToolCall

HISTORIC = "historic"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
PLAIN_TOOLS = "plain"
NATIVE_TOOLS = re.compile(r"\btools\b|\btool_calls\b")  # a template that reads them itself


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for ``POST /completion`` and the stop words its template needs."""

    text: str
    stop: tuple[str, ...]
    tool_format: str = PLAIN_TOOLS  # how the model will write a call to the tools offered

    @property
    def opens_thinking(self) -> bool:
        """Whether the prompt ends inside a ``<think>`` block: the answer begins with
        thoughts."""
        return self.text.rstrip().endswith(THINK_OPEN)


class ChatTemplate(Protocol):
    """Anything that renders a chat into a prompt."""

    name: str
    thinks: bool  # its models write their thoughts in <think> tags
    source: str  # its Jinja text ("" for the historic flags)

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict] = (),
        variables: Mapping[str, Any] = MappingProxyType({}),
    ) -> RenderedPrompt: ...


def with_tool_turns(messages: Sequence[Message], tools: Sequence[dict], format_name: str) -> list:
    """The chat in plain roles, for templates that know nothing of tools.

    The tools are described in the system message, an assistant's earlier calls are written
    into its text, and tool results become turns of the role the format reads them from,
    all in the words of ``format_name``'s models.
    """
    tool_format = toolformats.FORMATS[format_name]
    result = []
    for message in messages:
        if message.role == "assistant" and message.tool_calls:
            calls = [_tool_call_dict(call) for call in message.tool_calls]
            text = "\n".join(
                part for part in (message.content, tool_format.render_call(calls)) if part
            )
            result.append(Message("assistant", text))
        elif message.role in ("tool", "function"):
            result.append(
                Message(
                    tool_format.result_role,
                    tool_format.render_result(message.content, message.name, message.tool_call_id),
                )
            )
        else:
            result.append(message)
    if tools:
        described = tool_format.system_prompt(list(tools))
        if result and result[0].role in ("system", "developer"):
            result[0] = Message(result[0].role, f"{result[0].content}\n\n{described}")
        else:
            result.insert(0, Message("system", described))
    return result


@dataclass(frozen=True)
class HistoricTemplate:
    """Render chats exactly like the historic shim, so existing deployments keep their prompts.

    The strings arrive with ``\\n`` escapes already turned into newlines.
    """

    chat_prompt: str
    user_name: str
    ai_name: str
    system_name: str
    stop_word: str
    name: str = field(default=HISTORIC, init=False)
    tool_format: str = field(default=PLAIN_TOOLS, init=False)
    thinks: bool = field(default=False, init=False)
    source: str = field(default="", init=False)  # no Jinja: the flags are the template

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict] = (),
        variables: Mapping[str, Any] = MappingProxyType({}),
    ) -> RenderedPrompt:
        """Render ``messages``; roles the flag template cannot express are the client's error.
        ``variables`` are for Jinja templates: the flags have no use for them."""
        if tools or any(m.tool_calls or m.role in ("tool", "function") for m in messages):
            messages = with_tool_turns(messages, tools, PLAIN_TOOLS)
        parts = [self.chat_prompt]
        for index, message in enumerate(messages):
            if message.role in ("system", "developer"):
                parts += [self.system_name, message.content]
            elif message.role == "user":
                parts += [self.user_name, message.content]
            elif message.role == "assistant":
                parts += [self.ai_name, message.content, self.stop_word]
            else:
                raise InvalidRequestError(
                    f"the historic chat template has no {message.role!r} role (it knows system, "
                    "developer, user and assistant); start the proxy with --chat-template naming "
                    "a template that supports it",
                    param=f"messages[{index}].role",
                )
        parts.append(self.ai_name.rstrip())
        stop = (self.stop_word,) if self.stop_word else ()
        return RenderedPrompt(text="".join(parts), stop=stop)


class _TemplateRaised(Exception):
    """A template called ``raise_exception``: it refuses these messages."""


def _raise_exception(message: str) -> NoReturn:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _to_json(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Dump JSON as model templates expect it, without Jinja's HTML escaping of ``<>&'``."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _tool_call_dict(call: ToolCall, call_id: Callable[[str], str] = str) -> dict:
    """A call in the OpenAI shape templates index into (``call.function.name``), its
    arguments a mapping as Hugging Face templates iterate them (JSON text that is no object
    stays text), its id as ``call_id`` writes it."""
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        arguments = call.arguments
    if not isinstance(arguments, dict):
        arguments = call.arguments
    return {
        "id": call_id(call.id),
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _message_dict(message: Message, call_id: Callable[[str], str] = str) -> dict:
    """Turn a message into the dict shape Hugging Face style templates read."""
    result: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        result["name"] = message.name
    if message.tool_calls:
        result["tool_calls"] = [_tool_call_dict(call, call_id) for call in message.tool_calls]
    if message.tool_call_id is not None:
        result["tool_call_id"] = call_id(message.tool_call_id)
    if message.reasoning:
        result["reasoning_content"] = message.reasoning
    return result


# Errors a template can raise while looking at request data; each means "cannot render this chat".
_RENDER_ERRORS = (
    jinja2.TemplateError,
    _TemplateRaised,
    TypeError,
    ValueError,
    LookupError,
    ArithmeticError,
)


class JinjaTemplate:
    """Render chats with a Jinja chat template (Hugging Face / GGUF conventions), sandboxed."""

    def __init__(
        self,
        source: str,
        *,
        name: str,
        stop: Sequence[str] = (),
        bos_token: str = "",
        eos_token: str = "",
        adds_bos: bool = True,
        tool_format: str | None = None,
    ) -> None:
        """Compile ``source`` once.

        A template that reads ``tools`` itself (Hugging Face style) gets them as they are, and
        its models' call format is recognised from its text; any other is given the chat in
        ``tool_format``'s words (see :func:`with_tool_turns`). ``adds_bos``: the server's
        tokenizer puts ``bos_token`` before every prompt itself (the model's
        ``add_bos_token``), so a prompt must not begin with it too.

        :raises ValueError: the template has a syntax error (a start-up error).
        """
        self.name = name
        self.source = source
        self.stop = tuple(stop)
        self.native_tools = tool_format is None and bool(NATIVE_TOOLS.search(source))
        self.tool_format = tool_format or toolformats.format_of_template(source)
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.adds_bos = adds_bos
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = _strftime_now
        environment.filters["tojson"] = _to_json
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(
                f"chat template {name!r} has a syntax error on line {exc.lineno}: {exc.message}"
            ) from exc
        self.thinks = THINK_OPEN in source or THINK_CLOSE in source
        self.call_id = template_id if self._takes_only_short_ids() else str

    def _takes_only_short_ids(self) -> bool:
        """Whether the template refuses call ids that are not Mistral's (see
        :mod:`proxy.backends.structured.callids`)."""

        def renders(call_id: str) -> bool:
            chat = callids.probe(call_id)
            calls = tuple(
                ToolCall(call["id"], call["function"]["name"], "{}")
                for call in chat["messages"][1]["tool_calls"]
            )
            messages = (
                Message("user", "x"),
                Message("assistant", "", tool_calls=calls),
                Message("tool", "y", tool_call_id=call_id),
            )
            try:
                self.render(messages, chat["tools"])
            except InvalidRequestError:
                return False
            return True

        self.call_id = str
        return (
            self.native_tools
            and not renders(callids.LONG_ID)
            and renders(template_id(callids.LONG_ID))
        )

    def __repr__(self) -> str:
        return f"JinjaTemplate(name={self.name!r}, stop={self.stop!r})"

    def render(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict] = (),
        variables: Mapping[str, Any] = MappingProxyType({}),
    ) -> RenderedPrompt:
        """Render ``messages`` with an open assistant turn at the end; ``variables`` are the
        request's own for the template (``enable_thinking``…).

        :raises InvalidRequestError: the template refused the chat or failed on it.
        """
        extra = dict(variables)
        if self.native_tools:
            if tools:
                extra["tools"] = list(tools)
        elif tools or any(m.tool_calls or m.role in ("tool", "function") for m in messages):
            messages = with_tool_turns(messages, tools, self.tool_format)
        extra.update(
            messages=[_message_dict(message, self.call_id) for message in messages],
            add_generation_prompt=True,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
        try:
            text = self._template.render(**extra)
        except SecurityError as exc:
            raise InvalidRequestError(
                f"the chat template {self.name!r} tried an operation the sandbox forbids: {exc}",
                param="messages",
            ) from exc
        except _RENDER_ERRORS as exc:
            raise InvalidRequestError(
                f"the chat template {self.name!r} cannot render these messages: {exc}",
                param="messages",
            ) from exc
        # A server that adds BOS itself would add a second one, and the model would see it.
        if self.adds_bos and self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return RenderedPrompt(text=text, stop=self.stop, tool_format=self.tool_format)
