"""Which chat template renders a completion server's prompts (``chattemplate.py``), from four
sources, chosen once at start-up by :func:`build_template`:

- ``historic``: the flag template of the original shim (``--chat-prompt``, ``--user-name``,
  ``--ai-name``, ``--system-name``, ``--stop``);
- a bundled preset (``chat_templates/<name>.jinja`` beside this module, see :data:`PRESETS`);
- ``auto``: the GGUF chat template the server reports in ``GET /props``;
- a path to a Jinja file.

A name that is none of these, or a file that cannot be read or compiled, stops the proxy.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from proxy.backends.servercpp.chattemplate import (
    HISTORIC,
    PLAIN_TOOLS,
    ChatTemplate,
    HistoricTemplate,
    JinjaTemplate,
)

logger = logging.getLogger(__name__)

# Stop words of each bundled preset; the preset's text lives in chat_templates/<name>.jinja.
PRESET_STOP_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "chatml": ("<|im_end|>",),
        "llama2": ("</s>",),
        "llama3": ("<|eot_id|>",),
        "mistral": ("</s>",),
        "vicuna": ("</s>",),
        # Alpaca models often run on into a new instruction instead of emitting EOS.
        "alpaca": ("</s>", "### Instruction:"),
        "zephyr": ("</s>",),
        # ChatGLM3 ends a turn by opening the next one, not with EOS.
        "chatglm3": ("<|user|>", "<|observation|>"),
    }
)

PRESETS: tuple[str, ...] = tuple(PRESET_STOP_WORDS)
AUTO = "auto"

# The tool-call format each preset's models were trained on; any other template gets the
# plain one, a documented text convention (see proxy.backends.structured.toolformats).
PRESET_TOOL_FORMATS: Mapping[str, str] = MappingProxyType(
    {"chatml": "hermes", "llama3": "llama3", "mistral": "mistral", "chatglm3": "chatglm3"}
)


def read_preset(name: str) -> str:
    """Return the Jinja source of a bundled preset."""
    resource = resources.files(__package__) / "chat_templates" / f"{name}.jinja"
    return resource.read_text(encoding="utf-8")


def _read_template_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read chat template file {path!r}: {exc}") from exc


@dataclass(frozen=True)
class TemplateChoice:
    """The chat template the operator chose (``--chat-template``), made once the server is
    known: ``historic``, a preset, a Jinja file, or ``auto``, the server's own (rendered by
    its chat layer where it has one, else here)."""

    spec: str
    historic: HistoricTemplate

    def __post_init__(self) -> None:
        """A spec that names no preset or readable file fails here, at start-up."""
        if self.spec != AUTO:
            self.build()

    @property
    def servers_own(self) -> bool:
        return self.spec == AUTO

    def build(
        self,
        server_template: str | None = None,
        bos_token: str = "",
        eos_token: str = "",
        adds_bos: bool = True,
    ) -> ChatTemplate:
        """The template, given what the server reports (see :func:`build_template`)."""
        return build_template(
            self.spec,
            historic=self.historic,
            server_template=server_template,
            bos_token=bos_token,
            eos_token=eos_token,
            adds_bos=adds_bos,
        )


def build_template(
    spec: str,
    *,
    historic: HistoricTemplate,
    server_template: str | None = None,
    bos_token: str = "",
    eos_token: str = "",
    adds_bos: bool = True,
) -> ChatTemplate:
    """Choose the chat template named by ``--chat-template``.

    :param spec: ``historic``, a preset name, ``auto`` or a path to a Jinja file.
    :param historic: the flag template, used for ``historic`` and as the ``auto`` fallback.
    :param server_template: the ``chat_template`` the server reports in ``/props``, if any,
        with its ``bos_token`` and ``eos_token``, and whether its tokenizer adds BOS itself.
    :raises ValueError: unknown name, unreadable file or a template with a syntax error.
    """
    if spec == HISTORIC:
        return historic
    if spec in PRESET_STOP_WORDS:
        return JinjaTemplate(
            read_preset(spec),
            name=spec,
            stop=PRESET_STOP_WORDS[spec],
            tool_format=PRESET_TOOL_FORMATS.get(spec, PLAIN_TOOLS),
        )
    if spec == AUTO:
        if not server_template:
            logger.warning(
                "the server reports no chat template (older llama.cpp or "
                "PowerInfer); using the historic template"
            )
            return historic
        return JinjaTemplate(
            server_template,
            name="auto (the server's chat template)",
            bos_token=bos_token,
            eos_token=eos_token,
            adds_bos=adds_bos,
        )
    if os.path.isfile(spec):
        return JinjaTemplate(
            _read_template_file(spec),
            name=spec,
            bos_token=bos_token,
            eos_token=eos_token,
            adds_bos=adds_bos,
        )
    choices = ", ".join((HISTORIC, AUTO) + PRESETS)
    raise ValueError(
        f"unknown chat template {spec!r}: not one of {choices}, and not an existing file"
    )
