"""A tiny GGUF that writes scripted answers token for token, chosen by what its prompt holds.

Real models cannot be downloaded on the test machines, and a model that merely stops (see
:mod:`.stoppingmodel`) cannot show that a tool call or a thought came through. This one
carries a model family's real chat template and special tokens, and answers with that
family's own output: a thought, a call, two calls, in the family's syntax.

How it works. One layer whose feed-forward part is zero. A token that takes part in a
script has an embedding direction of its own; every other token shares the "other"
direction. So the next token depends on the last one: each script token leads to the next,
the last to the end of text, and "other" (the end of any prompt) to the first token of the
default script. The attention, one small head, looks for trigger tokens anywhere in the
prompt: a trigger's key outweighs everything else, so the attention copies the trigger's
direction into the last position, and there the first token of the trigger's own script
outscores the default's. A trigger of higher ``priority`` outweighs lower ones (a tool
result's trigger outweighs the words of the question that led to the call). The rotary
embedding runs at so large a base that the dimension the attention reads does not turn: a
trigger is seen wherever it is.

The vocabulary is byte-level BPE, as most families' is: bytes, a few English words (so that
long prompts stay short), the family's special tokens, and the scripts' own pieces. A script
piece is text the vocabulary had not, so no merge makes it of a prompt: only generation
walks a script. Because the next token depends on the last alone, a token can stand at one
place of one script only: a special token the scripts use again is written as plain text
after its first use.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from itertools import pairwise
from typing import Optional, Sequence

import gguf
import numpy as np

from .tinymodel import _WORDS, Shape, write_llama_gguf

HEAD = 8  # the attention's one head: key, value and rotary width
ROPE_BASE = 1e12  # the head's last rotary pair turns by about 1e-9 radians a token
CONTEXT = 262144
SCALE = 1.0  # the residual's norm multiplies it by sqrt(width / 2) at least: margins of 10+
PIECE = 6  # the most characters of plain text one script token holds
NORMAL = gguf.TokenType.NORMAL


@dataclass(frozen=True)
class Script:
    """An answer, and the token that selects it (``None``: the answer when none is there)."""

    text: str
    trigger: Optional[str] = None
    priority: int = 0
    # the trigger is a word the tokenizer's merges make of plain text, not a special token:
    # PowerInfer's server reads no special token in a prompt, llama.cpp's of 2023 only
    # those no two tokens make. A word begins with its space, as the prompt writes it.
    word: bool = False


@dataclass(frozen=True)
class Tokens:
    """A family's special tokens: ``control`` ones (special text in a prompt; left out of a
    server's output unless kept), ``user_defined`` ones (always whole tokens), the beginning
    and end of text, and whether the tokenizer adds the beginning itself."""

    control: tuple = ()
    user_defined: tuple = ()
    bos: str = "<s>"
    eos: str = "</s>"
    add_bos: bool = True


def write_scripted_gguf(
    path: pathlib.Path,
    scripts: Sequence[Script],
    tokens: Tokens,
    chat_template: str,
    name: str = "tiny-scripted",
    context: int = CONTEXT,
    *,
    old_servers: bool = False,
) -> pathlib.Path:
    """Write a model that answers ``scripts`` under ``chat_template``; return the path.
    ``old_servers``: with as many heads as its width holds, all but the first idle, as the
    servers of 2023 load a model only where a head's width is the model's over its heads
    (it has one head of :data:`HEAD` otherwise)."""
    if sum(script.trigger is None for script in scripts) != 1:
        raise ValueError("exactly one script must have no trigger: the default answer")
    if sum(script.trigger is not None for script in scripts) > HEAD - 2:
        raise ValueError(f"at most {HEAD - 2} triggers fit the attention head")
    vocabulary = _Vocabulary(tokens)
    triggers = [_trigger(vocabulary, script) for script in scripts]
    chains = [vocabulary.chain(script.text) for script in scripts]
    width = 1 + len(scripts) + sum(len(chain) for chain in chains)
    width += -width % 64
    tensors = _weights(len(vocabulary.texts), vocabulary.eos, width, scripts, chains, triggers)
    heads = width // HEAD if old_servers else 1
    if heads > 1:  # the idle heads ask nothing and write nothing
        tensors["blk.0.attn_q.weight"] = np.pad(
            tensors["blk.0.attn_q.weight"], ((0, (heads - 1) * HEAD), (0, 0))
        )
        tensors["blk.0.attn_output.weight"] = np.pad(
            tensors["blk.0.attn_output.weight"], ((0, 0), (0, (heads - 1) * HEAD))
        )
    shape = Shape(width=width, layers=1, heads=heads, heads_kv=1, ff=64)
    return write_llama_gguf(
        path,
        name,
        vocabulary.table(),
        tensors,
        context,
        chat_template,
        shape,
        bos_id=vocabulary.bos,
        eos_id=vocabulary.eos,
        add_bos=tokens.add_bos,
        head_width=HEAD,
        rope_freq_base=ROPE_BASE,
        merges=vocabulary.merges,
    )


def _trigger(vocabulary: "_Vocabulary", script: Script) -> Optional[int]:
    """The token of ``script``'s trigger, ``None`` for the default answer's."""
    if script.trigger is None:
        return None
    if script.word:
        return vocabulary.word(script.trigger)
    return vocabulary.special(script.trigger, gguf.TokenType.USER_DEFINED)


def _byte_chars() -> list:
    """GPT-2's byte-level alphabet: the character that stands for each byte in a BPE vocab."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


BYTE_CHARS = _byte_chars()


def encoded(text: str) -> str:
    """``text`` as a byte-level BPE vocabulary writes it."""
    return "".join(BYTE_CHARS[byte] for byte in text.encode("utf-8"))


class _Vocabulary:
    """The family's special tokens, bytes, word pieces with their merges, script pieces."""

    def __init__(self, tokens: Tokens) -> None:
        self.texts: list = []
        self.types: list = []
        self.ids: dict = {}
        self.merges: list = []
        self.used: set = set()  # special tokens some script stands on
        for text in (tokens.bos, tokens.eos, *tokens.control):
            self.special(text, gguf.TokenType.CONTROL)
        for text in tokens.user_defined:
            self.special(text, gguf.TokenType.USER_DEFINED)
        self.bos, self.eos = self.ids[tokens.bos], self.ids[tokens.eos]
        for char in BYTE_CHARS:
            self._add(char, NORMAL)
        for word in _WORDS:
            piece = BYTE_CHARS[ord(" ")]
            for char in word:
                if piece + char not in self.ids:
                    self.merges.append(f"{piece} {char}")
                    self._add(piece + char, NORMAL)
                piece += char

    def table(self) -> tuple:
        return self.texts, [0.0] * len(self.texts), self.types

    def special(self, text: str, kind) -> int:
        """The id of a special token, added as ``kind`` when new."""
        return self.ids[text] if text in self.ids else self._add(text, kind)

    def word(self, text: str) -> int:
        """The id of the word ``text``, added with the merges that make it of its bytes,
        one after another, and the pieces they make on the way."""
        written = encoded(text)
        piece = written[0]
        for char in written[1:]:
            merge = f"{piece} {char}"
            if merge not in self.merges:
                self.merges.append(merge)
            piece += char
            if piece not in self.ids:
                self._add(piece, NORMAL)
        return self.ids[piece]

    def _add(self, text: str, kind) -> int:
        self.ids[text] = len(self.texts)
        self.texts.append(text)
        self.types.append(kind)
        return self.ids[text]

    def chain(self, text: str) -> list:
        """The tokens that write ``text``: special tokens at their first use in any script,
        new pieces of plain text for the rest. A stretch of plain text that cannot be cut into
        new pieces takes in its neighbour."""
        runs = self._runs(text)
        chain: list = []
        index = 0
        while index < len(runs):
            special, segment = runs[index]
            if special:
                chain.append(self.ids[segment])
                index += 1
                continue
            pieces = self._cut(segment)
            if pieces is not None:
                chain += [self._add(piece, NORMAL) for piece in pieces]
                index += 1
            elif index > 0 and runs[index - 1][0]:  # the special before it, as plain text
                self.used.discard(runs[index - 1][1])
                chain.pop()
                runs[index - 1 : index + 1] = [(False, runs[index - 1][1] + segment)]
                index -= 1
            elif index + 1 < len(runs):
                if runs[index + 1][0]:
                    self.used.discard(runs[index + 1][1])
                runs[index : index + 2] = [(False, segment + runs[index + 1][1])]
            else:
                raise ValueError(f"{segment!r} cannot be written in pieces new to the vocabulary")
        return chain

    def _runs(self, text: str) -> list:
        """``text`` as ``(special?, text)`` runs: a special token no script stands on yet,
        or plain text."""
        specials = sorted(
            (t for t, i in self.ids.items() if self.types[i] != NORMAL), key=len, reverse=True
        )
        runs: list = []
        position = 0
        while position < len(text):
            special = next((s for s in specials if text.startswith(s, position)), None)
            if special is not None and special not in self.used:
                self.used.add(special)
                runs.append((True, special))
                position += len(special)
                continue
            piece = special or text[position]
            if runs and not runs[-1][0]:
                runs[-1] = (False, runs[-1][1] + piece)
            else:
                runs.append((False, piece))
            position += len(piece)
        return runs

    def _cut(self, text: str) -> Optional[list]:
        """``text`` in pieces of at most :data:`PIECE` characters where it can be, each new
        to the vocabulary and more than one byte (bytes are tokens of their own); ``None``
        when there is no such cut."""
        failed: set = set()  # where the rest of the text could not be cut

        def cut(start: int, taken: frozenset) -> Optional[list]:
            if start == len(text):
                return []
            if start in failed:
                return None
            for end in range(min(start + PIECE, len(text)), len(text) + 1):
                piece = encoded(text[start:end])
                if piece in self.ids or piece in taken or len(text[start:end].encode()) < 2:
                    continue
                rest = cut(end, taken | {piece})
                if rest is not None:
                    return [piece, *rest]
            failed.add(start)
            return None

        return cut(0, frozenset())


def _weights(
    vocab: int, eos: int, width: int, scripts: Sequence[Script], chains: list, triggers: list
) -> dict:
    """Embeddings, the trigger-seeking head, and the output rows that follow the scripts."""
    embeddings = np.zeros((vocab, width), np.float32)
    embeddings[:, 0] = 1.0  # direction 0: any other token
    output = np.zeros((vocab, width), np.float32)
    query = np.zeros((HEAD, width), np.float32)
    key = np.zeros((HEAD, width), np.float32)
    value = np.zeros((HEAD, width), np.float32)
    out = np.zeros((width, HEAD), np.float32)
    root = np.sqrt(np.float32(width))  # the attention's input norm scales a one-hot by it
    looked_at = HEAD - 2  # the head's last rotary pair: the slowest to turn
    query[looked_at, :] = 1.0
    direction = 1
    slot = 0  # the trigger's dimension in the head's values
    for script, chain, trigger in zip(scripts, chains, triggers, strict=True):
        first = chain[0]
        if trigger is None:
            output[first, 0] = 2 * SCALE
        else:
            seen = direction
            direction += 1
            embeddings[trigger] = 0.0
            embeddings[trigger, seen] = 1.0
            # score = q.k / sqrt(HEAD): the trigger's is 40 or more, every other token's 0
            key[looked_at, seen] = (40.0 + 20.0 * script.priority) * np.sqrt(HEAD) / root**2
            value[slot, seen] = 1.0 / root
            out[seen, slot] = 1.0
            slot += 1
            output[first, 0] = SCALE
            output[first, seen] = 2 * SCALE
        for token, after in pairwise([*chain, eos]):
            embeddings[token] = 0.0
            embeddings[token, direction] = 1.0
            output[after, direction] = 3 * SCALE
            direction += 1
    ones = np.ones(width, np.float32)
    return {
        "token_embd.weight": embeddings,
        "output_norm.weight": ones,
        "output.weight": output,
        "blk.0.attn_norm.weight": ones,
        "blk.0.attn_q.weight": query,
        "blk.0.attn_k.weight": key,
        "blk.0.attn_v.weight": value,
        "blk.0.attn_output.weight": out,
        "blk.0.ffn_norm.weight": ones,
        "blk.0.ffn_gate.weight": np.zeros((64, width), np.float32),
        "blk.0.ffn_up.weight": np.zeros((64, width), np.float32),
        "blk.0.ffn_down.weight": np.zeros((width, 64), np.float32),
    }
