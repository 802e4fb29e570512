"""Which files of a hub repository a model is, picked as ``llama-server -hf`` picks them.

A repository holds a model in several quantizations (``smol-Q4_K_M.gguf``,
``smol-Q8_0.gguf``), some split in parts (``…-00001-of-00003.gguf``), beside a vision
projector (``mmproj-…``) and files that are no model (an ``imatrix``, draft heads). The
quant tag picks the model file whose name has it followed by ``.`` or ``-``, in any case;
without a tag, ``Q4_K_M`` first, then ``Q8_0``, then the first model file. A split model is
all its parts. The projector is the one nearest the model: in its folder (or the deepest
folder above it), then of the closest number of bits. Pure: names in, names out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

DEFAULT_TAGS = ("Q4_K_M", "Q8_0")
NOT_MODELS = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")
PROJECTOR = "mmproj"
_SPLIT = re.compile(r"^(.+)-(\d{5})-of-(\d{5})$", re.IGNORECASE)
_TAG = re.compile(r"[-.]([A-Z0-9_]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Part:
    """What a GGUF file's name says: the name without part number, its quant tag, which
    part of how many it is."""

    stem: str
    tag: str
    index: int = 1
    count: int = 1


@dataclass(frozen=True)
class Choice:
    """The files a model is: every part of it in order, and its projector (empty: none)."""

    parts: tuple
    projector: str = ""


def part(path: str) -> Optional[Part]:
    """What ``path`` says of itself; ``None`` when it is no GGUF."""
    if not path.endswith(".gguf"):
        return None
    stem, index, count = path[: -len(".gguf")], 1, 1
    split = _SPLIT.match(stem)
    if split:
        stem, index, count = split.group(1), int(split.group(2)), int(split.group(3))
    tag = _TAG.search(stem)
    return Part(stem, tag.group(1).upper() if tag else "", index, count)


def is_model(path: str) -> bool:
    """A GGUF that is a model of its own, not a projector, an importance matrix or a head."""
    name = path.rpartition("/")[2]
    return name.endswith(".gguf") and not any(word in name for word in NOT_MODELS)


def bits(tag: str) -> int:
    """The bits a quant tag names: ``Q4_K_M`` 4, ``F16`` 16, ``BF16`` 16; 0 when none."""
    number = re.search(r"\d+", tag)
    return int(number.group()) if number else 0


def choose(files: Sequence[str], tag: str = "") -> Choice:
    """The model ``tag`` picks among ``files`` (paths in the repository); a ``ValueError``
    naming the GGUF files there when none fits."""
    first = _first_part(files, tag)
    if first is None:
        ggufs = ", ".join(f for f in files if f.endswith(".gguf")) or "none"
        wanted = f"the quant tag {tag!r}" if tag else "a model"
        raise ValueError(f"no GGUF file fits {wanted}; its GGUF files: {ggufs}")
    return Choice(_parts_of(files, first), _projector(files, first))


def _first_part(files: Sequence[str], tag: str) -> Optional[str]:
    models = [f for f in files if is_model(f) and part(f).index == 1]
    for wanted in (tag,) if tag else DEFAULT_TAGS:
        pattern = re.compile(re.escape(wanted) + r"[.-]", re.IGNORECASE)
        found = next((f for f in models if pattern.search(f)), None)
        if found:
            return found
    return None if tag or not models else models[0]


def _parts_of(files: Sequence[str], first: str) -> tuple:
    whole = part(first)
    if whole.count == 1:
        return (first,)
    parts = [
        f for f in files if part(f) and (part(f).stem, part(f).count) == (whole.stem, whole.count)
    ]
    return tuple(sorted(parts, key=lambda f: part(f).index))


def _projector(files: Sequence[str], model: str) -> str:
    """The projector nearest ``model``: in the deepest folder it shares with the model, then
    the closest in bits."""
    folders = model.split("/")[:-1]
    wanted = bits(part(model).tag)
    best, best_rank = "", None
    for path in files:
        if not path.endswith(".gguf") or PROJECTOR not in path:
            continue
        theirs = path.split("/")[:-1]
        if theirs != folders[: len(theirs)]:
            continue  # not in the model's folder or one above it
        rank = (-len(theirs), abs(bits(part(path).tag) - wanted))
        if best_rank is None or rank < best_rank:
            best, best_rank = path, rank
    return best
