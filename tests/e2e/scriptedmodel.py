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

Script tokens are new pieces of plain text that the tokenizer never makes of a prompt's
text (checked when the file is written), so only generation walks a script. A special token
that a script repeats is written as plain text after its first use, because the next token
depends on the last alone.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Optional, Sequence

import gguf
import numpy as np

from .tinymodel import _PIECES, Shape, write_llama_gguf

SPACE = "\u2581"  # SentencePiece's word boundary: the vocabulary stores spaces as this
HEAD = 8  # the attention's one head: key, value and rotary width
ROPE_BASE = 1e12  # the head's last rotary pair turns by about 1e-9 radians a token
CONTEXT = 262144
SCALE = 1.0  # the residual's norm multiplies it by sqrt(width / 2) at least: margins of 10+
PIECE = 6  # the most characters of plain text one script token holds
SHORTEST = 3  # the fewest: the tokenizer makes pieces of one or two characters of any text


@dataclass(frozen=True)
class Script:
    """An answer, and the token that selects it (``None``: the answer when none is there)."""

    text: str
    trigger: Optional[str] = None
    priority: int = 0


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


def write_scripted_gguf(path: pathlib.Path, scripts: Sequence[Script], tokens: Tokens,
                        chat_template: str, name: str = "tiny-scripted",
                        context: int = CONTEXT) -> pathlib.Path:
    """Write a model that answers ``scripts`` under ``chat_template``; return the path."""
    if sum(script.trigger is None for script in scripts) != 1:
        raise ValueError("exactly one script must have no trigger: the default answer")
    vocabulary = _Vocabulary(tokens)
    triggers = [vocabulary.special(script.trigger, gguf.TokenType.USER_DEFINED)
                if script.trigger else None for script in scripts]
    chains = [vocabulary.chain(script.text) for script in scripts]
    if len([t for t in triggers if t is not None]) > HEAD - 2:
        raise ValueError(f"at most {HEAD - 2} triggers fit the attention head")
    width = 1 + len(scripts) + sum(len(chain) for chain in chains)
    width += -width % 64
    tensors = _weights(len(vocabulary.texts), vocabulary.eos, width, scripts, chains, triggers)
    shape = Shape(width=width, layers=1, heads=1, heads_kv=1, ff=64)
    return write_llama_gguf(path, name, vocabulary.table(), tensors, context, chat_template,
                            shape, bos_id=vocabulary.bos, eos_id=vocabulary.eos,
                            add_bos=tokens.add_bos, head_width=HEAD, rope_freq_base=ROPE_BASE)


class _Vocabulary:
    """Unknown, the family's special tokens, bytes, the tiny model's word pieces (so that
    long prompts stay short), and the scripts' own pieces."""

    def __init__(self, tokens: Tokens) -> None:
        self.texts: list = []
        self.types: list = []
        self.scores: list = []
        self.ids: dict = {}
        self._add("<unk>", gguf.TokenType.UNKNOWN)
        for text in (tokens.bos, tokens.eos, *tokens.control):
            self.special(text, gguf.TokenType.CONTROL)
        for text in tokens.user_defined:
            self.special(text, gguf.TokenType.USER_DEFINED)
        self.bos, self.eos = self.ids[tokens.bos], self.ids[tokens.eos]
        for byte in range(256):
            self._add(f"<0x{byte:02X}>", gguf.TokenType.BYTE)
        for rank, piece in enumerate(_PIECES):
            self._add(piece, gguf.TokenType.NORMAL, float(len(piece)) - rank / 10000.0)
        self.reachable = _reachable(self.texts[index] for index, kind in enumerate(self.types)
                                    if kind == gguf.TokenType.NORMAL)

    def table(self) -> tuple:
        return self.texts, self.scores, self.types

    def special(self, text: str, kind) -> int:
        """The id of a special token, added as ``kind`` when new."""
        return self.ids[text] if text in self.ids else self._add(text, kind)

    def _add(self, text: str, kind, score: float = 0.0) -> int:
        self.ids[text] = len(self.texts)
        self.texts.append(text)
        self.types.append(kind)
        self.scores.append(score)
        return self.ids[text]

    def chain(self, text: str) -> list:
        """The tokens that write ``text``."""
        chain = []
        for special, segment in self._segments(text):
            chain += [self.ids[segment]] if special else self._pieces(segment)
        return chain

    def _segments(self, text: str) -> list:
        """``text`` as ``(special?, text)`` runs: a special token once, plain text else, and
        no plain run shorter than :data:`SHORTEST` (it takes in its neighbour)."""
        specials = sorted((t for t, i in self.ids.items()
                           if self.types[i] in (gguf.TokenType.CONTROL,
                                                gguf.TokenType.USER_DEFINED)),
                          key=len, reverse=True)
        runs: list = []
        used: set = set()
        position = 0
        while position < len(text):
            special = next((s for s in specials if text.startswith(s, position)), None)
            if special is not None and special not in used:
                used.add(special)
                runs.append([True, special])
                position += len(special)
                continue
            piece = special or text[position]
            if runs and not runs[-1][0]:
                runs[-1][1] += piece
            else:
                runs.append([False, piece])
            position += len(piece)
        return _no_short_runs(runs)

    def _pieces(self, text: str) -> list:
        """New tokens for plain ``text``: pieces of :data:`SHORTEST` to :data:`PIECE`
        characters, each a text the vocabulary lacks and the tokenizer cannot reach."""
        stored = text.replace(" ", SPACE)
        tokens = []
        position = 0
        while position < len(stored):
            rest = len(stored) - position
            for length in range(min(PIECE, rest), rest + 1):
                piece = stored[position:position + length]
                left = rest - length
                if (left == 0 or left >= SHORTEST) and piece not in self.ids \
                        and not _splits(piece, self.reachable):
                    break
            else:
                raise ValueError(f"no piece of {stored[position:]!r} is new to the vocabulary "
                                 f"and out of the tokenizer's reach")
            tokens.append(self._add(piece, gguf.TokenType.NORMAL))
            position += length
        return tokens


def _no_short_runs(runs: list) -> list:
    """Join each plain run shorter than :data:`SHORTEST` with the run after it (the run
    before, at the end), as plain text."""
    index = 0
    while index < len(runs):
        special, text = runs[index]
        if special or len(text) >= SHORTEST or len(runs) == 1:
            index += 1
            continue
        other = index + 1 if index + 1 < len(runs) else index - 1
        first, second = sorted((index, other))
        runs[first:second + 1] = [[False, runs[first][1] + runs[second][1]]]
        index = max(first - 1, 0)
    return [tuple(run) for run in runs]


def _reachable(pieces) -> set:
    """The pieces SentencePiece can make of text: one character, or two it can make."""
    reachable: set = set()
    for piece in sorted(pieces, key=len):
        if len(piece) == 1 or _splits(piece, reachable):
            reachable.add(piece)
    return reachable


def _splits(piece: str, reachable: set) -> bool:
    """Whether ``piece`` is two parts each one character or a reachable piece."""
    return any((len(piece[:cut]) == 1 or piece[:cut] in reachable)
               and (len(piece[cut:]) == 1 or piece[cut:] in reachable)
               for cut in range(1, len(piece)))


def _weights(vocab: int, eos: int, width: int, scripts: Sequence[Script], chains: list,
             triggers: list) -> dict:
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
    for script, chain, trigger in zip(scripts, chains, triggers):
        first = chain[0]
        if trigger is None:
            output[first, 0] = 2 * SCALE
        else:
            seen = direction
            direction += 1
            embeddings[trigger] = 0.0
            embeddings[trigger, seen] = 1.0
            # score = q.k / sqrt(HEAD): the trigger's is 40 or more, every other token's 0
            key[looked_at, seen] = (40.0 + 20.0 * script.priority) * np.sqrt(HEAD) / root ** 2
            value[slot, seen] = 1.0 / root
            out[seen, slot] = 1.0
            slot += 1
            output[first, 0] = SCALE
            output[first, seen] = 2 * SCALE
        for token, after in zip(chain, chain[1:] + [eos]):
            embeddings[token] = 0.0
            embeddings[token, direction] = 1.0
            output[after, direction] = 3 * SCALE
            direction += 1
    ones = np.ones(width, np.float32)
    return {"token_embd.weight": embeddings, "output_norm.weight": ones,
            "output.weight": output, "blk.0.attn_norm.weight": ones,
            "blk.0.attn_q.weight": query, "blk.0.attn_k.weight": key,
            "blk.0.attn_v.weight": value, "blk.0.attn_output.weight": out,
            "blk.0.ffn_norm.weight": ones,
            "blk.0.ffn_gate.weight": np.zeros((64, width), np.float32),
            "blk.0.ffn_up.weight": np.zeros((64, width), np.float32),
            "blk.0.ffn_down.weight": np.zeros((width, 64), np.float32)}
