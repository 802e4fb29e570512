"""Today's coder families as tiny models: the tiny llama with a family's fill-in-the-middle
tokens in its vocabulary, found as llama.cpp finds them (by their text, or by the GGUF fields
that name them), and its BOS as the family's tokenizer puts it.

Its weights are random, so what it writes depends on the whole prompt: the same greedy answer
for two prompts is evidence they are the same. Every kind of server loads it.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

from .tinymodel import VOCAB_SIZE, write_tiny_llama_gguf

FIM_FIELDS = ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
              "tokenizer.ggml.fim_mid_token_id")  # fmt: skip


@dataclass(frozen=True)
class Coder:
    """A family: its FIM tokens (prefix, suffix, middle first), whether its tokenizer puts BOS
    before a prompt, and whether the GGUF names the three (no text llama.cpp knows them by)."""

    name: str
    tokens: tuple
    add_bos: bool
    named: bool = False
    more: tuple = field(default=())

    def write(self, folder: pathlib.Path) -> pathlib.Path:
        """The family's tiny model in ``folder``."""
        named = {key: VOCAB_SIZE + index for index, key in enumerate(FIM_FIELDS)}
        return write_tiny_llama_gguf(
            folder / f"{self.name}.gguf",
            control=self.tokens + self.more,
            add_bos=self.add_bos,
            name=self.name,
            fields=named if self.named else None,
        )


QWEN = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
QWEN_MORE = ("<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")
CODERS = (
    Coder("qwen2.5-coder", QWEN, add_bos=False, more=QWEN_MORE),
    Coder("qwen3-coder", QWEN, add_bos=False, more=QWEN_MORE + ("<|im_start|>", "<|im_end|>")),
    Coder("codellama", ("▁<PRE>", "▁<SUF>", "▁<MID>"), add_bos=True, more=("▁<EOT>",)),
    Coder("starcoder2", ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"), add_bos=False,
          more=("<fim_pad>", "<repo_name>", "<file_sep>")),
    Coder("deepseek-coder", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"), add_bos=True),
    Coder("codestral", ("[PREFIX]", "[SUFFIX]", "[MIDDLE]"), add_bos=True, named=True),
)  # fmt: skip
