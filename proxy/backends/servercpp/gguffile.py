"""What a GGUF model file says of itself in its header: its metadata fields and tensors."""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass

MAGIC = b"GGUF"
STRING, ARRAY = 8, 9  # the GGUF value types that are no number
NUMBERS = {  # the other value types, as struct lays them out
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip


@dataclass(frozen=True)
class GGUFFile:
    """A GGUF file's metadata (name → number, string, or list of them) and tensor totals."""

    fields: dict
    tensor_bytes: int
    parameters: int

    @property
    def architecture(self) -> str:
        arch = self.fields.get("general.architecture")
        return arch if isinstance(arch, str) else ""

    def of_architecture(self, name: str, default=None):
        """The field ``<architecture>.<name>``."""
        return self.fields.get(f"{self.architecture}.{name}", default)

    @property
    def quantization(self) -> str:
        """The file type's name as people write it (``Q4_K_M``), when the file says."""
        from gguf import LlamaFileType

        kind = self.fields.get("general.file_type")
        try:
            return LlamaFileType(kind).name.removeprefix("MOSTLY_")
        except ValueError:
            return ""


def check(path: str) -> None:
    """A ``ValueError`` naming ``path`` when it cannot be read or is no GGUF file; its
    first four bytes tell, before a server spends seconds finding out."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(MAGIC))
    except OSError as exc:
        raise ValueError(f"cannot read the model file {path}: {exc.strerror}") from None
    if magic != MAGIC:
        raise ValueError(f"{path} is not a GGUF model file (it does not begin with GGUF)")


def read(path: str) -> GGUFFile:
    """The header of the GGUF at ``path``; a ``ValueError`` when it is not one."""
    try:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            return _Header(data).read()
    except (OSError, ValueError, struct.error) as exc:
        raise ValueError(f"{path} is not a GGUF model file ({exc})") from None


class _Header:
    """A cursor through a GGUF header (the GGUF specification, version 2 and 3): read with
    :mod:`struct` from a memory map, because gguf's own reader makes a numpy view of every
    string of the vocabulary (seconds for a real model's), and a server's model file is read
    whenever the server is detected."""

    def __init__(self, data) -> None:
        self.data, self.at, self.order = data, 0, "<"

    def read(self) -> GGUFFile:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        if self.data[: len(MAGIC)] != MAGIC:
            raise ValueError("it does not begin with GGUF")
        self.at = len(MAGIC)
        if self.take("I") & 0xFFFF == 0:  # written big-endian
            self.order = ">"
        tensors, count = self.take("Q"), self.take("Q")
        fields = {}
        for _ in range(self._bounded(count, 12)):
            name = self.text()
            fields[name] = self.value(self.take("I"))
        tensor_bytes = parameters = 0
        for _ in range(self._bounded(tensors, 24)):
            self.text()
            elements = math.prod(self.take(f"{self._bounded(self.take('I'), 8)}Q", many=True))
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(self.take("I"))]
            self.take("Q")  # where its data lies
            parameters += elements
            tensor_bytes += elements * size // block
        return GGUFFile(fields, tensor_bytes, parameters)

    def value(self, kind: int):
        if kind == STRING:
            return self.text()
        if kind == ARRAY:
            kind, count = self.take("I"), self.take("Q")
            if kind in NUMBERS:
                return list(self.take(f"{self._bounded(count, 1)}{NUMBERS[kind]}", many=True))
            return [self.value(kind) for _ in range(self._bounded(count, 8))]
        if kind in NUMBERS:
            return self.take(NUMBERS[kind])
        raise ValueError(f"unknown value type {kind}")

    def text(self) -> str:
        length = self._bounded(self.take("Q"), 1)
        start, self.at = self.at, self.at + length
        return self.data[start : self.at].decode("utf-8", "replace")

    def take(self, layout: str, many: bool = False):
        values = struct.unpack_from(self.order + layout, self.data, self.at)
        self.at += struct.calcsize(self.order + layout)
        return values if many else values[0]

    def _bounded(self, count: int, smallest: int) -> int:
        """``count`` items of at least ``smallest`` bytes each, if what is left holds them:
        a count no file could hold is refused before any is read."""
        if count * smallest > len(self.data) - self.at:
            raise ValueError(f"a count of {count} runs past the end of the file")
        return count
