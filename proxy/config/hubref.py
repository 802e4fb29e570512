"""A model named by its place on a hub rather than by a file: ``hf:<org>/<repo>[:<quant>]``
(and the names Ollama's users type for the same, ``hf.co/<org>/<repo>:<quant>``); and one
file of a repository a server's flag names, ``hf:<org>/<repo>/<path>`` (a VAE, a text
encoder, a LoRA).

The quant tag picks the file as ``llama-server -hf`` picks it (:mod:`proxy.servers.hubfiles`);
Ollama's ``latest`` means no tag at all. Pure: parsing only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

PREFIXES = ("hf:", "hf.co/", "huggingface.co/")
FORM = "hf:<org>/<repo>[:<quant>] (or hf.co/<org>/<repo>[:<quant>])"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FILE_FORM = "hf:<org>/<repo>/<path of the file>"


def is_hub_reference(text: str) -> bool:
    """Whether ``text`` is written as a hub reference (well formed or not)."""
    return isinstance(text, str) and text.lower().startswith(PREFIXES)


@dataclass(frozen=True)
class HubReference:
    """A repository on the hub and the quantization to take from it."""

    repo: str  # <org>/<repo>
    tag: str = ""  # Q4_K_M, say; empty: Q4_K_M, else Q8_0, else the first model file

    @classmethod
    def parse(cls, text: str) -> Optional["HubReference"]:
        """The reference ``text`` writes; ``None`` when it is no hub reference, a
        ``ValueError`` saying the form when it is a malformed one."""
        if not is_hub_reference(text):
            return None
        prefix = next(p for p in PREFIXES if text.lower().startswith(p))
        repo, colon, tag = text[len(prefix) :].partition(":")
        parts = repo.split("/")
        if (
            len(parts) != 2
            or not all(_PART.fullmatch(part) and ".." not in part for part in parts)
            or (colon and not _TAG.fullmatch(tag))
        ):
            raise ValueError(f"{text!r} is not a hub reference of the form {FORM}")
        return cls(repo, "" if tag.lower() == "latest" else tag)

    @property
    def name(self) -> str:
        """How the proxy writes it: ``hf:org/repo:TAG``."""
        return f"hf:{self.repo}" + (f":{self.tag}" if self.tag else "")

    @property
    def ollama_name(self) -> str:
        """How Ollama's users write it: ``hf.co/org/repo:TAG`` (``latest`` for no tag)."""
        return f"hf.co/{self.repo}:{self.tag or 'latest'}"

    @property
    def model_id(self) -> str:
        """An id that may name files (its server's log, its slot folder): ``org--repo``
        and the tag, as the hub's own cache names a repository's folder."""
        return self.repo.replace("/", "--") + (f"-{self.tag}" if self.tag else "")


@dataclass(frozen=True)
class HubFileReference:
    """One file of a repository on the hub, by its path there."""

    repo: str  # <org>/<repo>
    path: str  # folder/file.safetensors

    @classmethod
    def parse(cls, text: str) -> Optional["HubFileReference"]:
        """The file ``text`` names; ``None`` when it is no hub reference, a ``ValueError``
        saying the form when it names no one file (a repository, a malformed path)."""
        if not is_hub_reference(text):
            return None
        prefix = next(p for p in PREFIXES if text.lower().startswith(p))
        org, _, rest = text[len(prefix) :].partition("/")
        repo, _, path = rest.partition("/")
        parts = path.split("/")
        if not (
            all(_PART.fullmatch(part) and ".." not in part for part in (org, repo))
            and path
            and len(path) <= 512
            and all(_PART.fullmatch(part) and part != ".." for part in parts)
        ):
            raise ValueError(f"{text!r} is not one file on a hub of the form {FILE_FORM}")
        return cls(f"{org}/{repo}", path)

    @property
    def name(self) -> str:
        return f"hf:{self.repo}/{self.path}"
