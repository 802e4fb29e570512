"""What a GGUF model file says of itself in its header: its metadata fields and tensors."""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"GGUF"


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
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a GGUF model file ({exc})") from None
    return GGUFFile(
        {name: _value(field) for name, field in reader.fields.items()},
        sum(int(tensor.n_bytes) for tensor in reader.tensors),
        sum(int(tensor.n_elements) for tensor in reader.tensors),
    )


def _value(field) -> object:
    """A metadata field's value: a number or a string, or a list of them."""
    from gguf import GGUFValueType

    parts = [field.parts[index] for index in field.data]
    if GGUFValueType.STRING in field.types:
        texts = [bytes(part).decode("utf-8", "replace") for part in parts]
        return texts if field.types[0] == GGUFValueType.ARRAY else texts[0]
    numbers = [part.tolist()[0] for part in parts]
    return numbers if field.types[0] == GGUFValueType.ARRAY else numbers[0]
