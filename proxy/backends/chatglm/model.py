"""The chatglm.cpp model behind the few calls the backend makes; the only user of ``chatglm_cpp``.

Everything that could crash the native code is kept out here: the file is checked before
loading, text is made encodable, ids the tokenizer cannot decode never reach it, and a
generation can never outgrow the KV cache (that aborts the process).
"""

from __future__ import annotations

import logging
import os
from typing import Iterator, Optional, Sequence

from proxy.backends.chatglm import ggmlfile
from proxy.core.errors import InvalidRequestError, UpstreamError

logger = logging.getLogger(__name__)

UNLIMITED = 2**31 - 1  # chatglm.cpp takes lengths as C ints
OBSERVATION = "<|observation|>"


class LoadedModel:
    """One loaded chatglm.cpp model: its tokenizer and next-token generation.

    Not thread-safe (one KV cache): the caller runs one generation at a time.
    """

    def __init__(self, pipeline, module, path: str, info: ggmlfile.ModelFile) -> None:
        self._pipeline = pipeline
        self._module = module
        self._token_count = info.token_count
        config = pipeline.model.config
        self.path = path
        self.name = os.path.basename(path)
        self.type_name = info.type_name
        self.max_length = config.max_length
        self.stop_ids = frozenset([config.eos_token_id, *config.extra_eos_token_ids])
        self.observation_id = next(
            (
                token
                for token in config.extra_eos_token_ids
                if pipeline.tokenizer.decode([token], skip_special_tokens=False) == OBSERVATION
            ),
            None,
        )
        self._prefix = list(pipeline.tokenizer.encode("", UNLIMITED))

    @classmethod
    def load(cls, path: str, max_length: int) -> "LoadedModel":
        """Check and load ``path``, its KV cache sized ``max_length`` or the file's own if less."""
        info = ggmlfile.inspect(path)
        try:
            from chatglm_cpp import _C as native
        except ImportError:
            raise ValueError(
                "--backend chatglm needs the chatglm-cpp package: pip install 'oai-proxy[chatglm]'"
            ) from None
        if info.max_length < max_length:
            logger.warning(
                "%s holds at most %d tokens; --max-length %d lowered to that",
                path,
                info.max_length,
                max_length,
            )
        try:
            # the native class: the Python wrapper would try to convert a Hugging Face model
            pipeline = native.Pipeline(path, min(max_length, info.max_length))
        except (RuntimeError, IndexError, ValueError) as exc:
            raise ValueError(f"chatglm.cpp cannot load {path}: {exc}") from None
        model = cls(pipeline, native, path, info)
        model._reserve_compute_memory()
        logger.info("loaded %s (%s), %d tokens of context", path, model.type_name, model.max_length)
        return model

    @property
    def supports_tools(self) -> bool:
        return self.observation_id is not None

    def chat_prompt(self, turns: Sequence[tuple], limit: int) -> list:
        """Token ids of a chat of ``(role, content)`` turns, keeping the last ``limit`` tokens."""
        messages = [
            self._module.ChatMessage(role=role, content=_encodable(content))
            for role, content in turns
        ]
        try:
            return list(self._pipeline.tokenizer.apply_chat_template(messages, limit))
        except RuntimeError as exc:  # ChatGLM and ChatGLM2 insist on user/assistant turns
            raise InvalidRequestError(
                f"{self.type_name} models cannot take these messages: {exc}", param="messages"
            ) from None

    def text_prompt(self, text: str, limit: int) -> list:
        """Token ids of a raw prompt, keeping the last ``limit`` tokens."""
        return list(self._pipeline.tokenizer.encode(_encodable(text), limit))

    def tokens(self, text: str) -> list:
        """Token ids of ``text`` alone, without the prefix every prompt starts with."""
        ids = self.text_prompt(text, UNLIMITED)
        size = len(self._prefix)
        if ids[:size] == self._prefix:
            return ids[size:]
        return ids[:-size] if ids[-size:] == self._prefix else ids  # ChatGLM-6B puts it last

    def is_token(self, token: int) -> bool:
        """Whether the tokenizer knows ``token`` (anything else is undefined behaviour there)."""
        return 0 <= token < self._token_count

    def decode(self, ids: Sequence[int]) -> Optional[str]:
        """Text of ``ids``, or ``None`` while they end inside a UTF-8 character."""
        try:
            return self._pipeline.tokenizer.decode([token for token in ids if self.is_token(token)])
        except UnicodeDecodeError:
            return None

    def generate(self, ids: Sequence[int], limit: int, sampling: dict) -> Iterator[int]:
        """Yield up to ``limit`` new token ids after the prompt ``ids``.

        The limit is cut to what the KV cache holds: generating past it aborts the process.
        """
        config = self._module.GenerationConfig(**sampling)
        ids = list(ids)
        prompt_size = len(ids)
        past = 0
        for _ in range(min(limit, self.max_length - prompt_size)):
            try:
                token = self._pipeline.model.generate_next_token(
                    ids, None, config, past, prompt_size
                )
            except RuntimeError as exc:
                raise UpstreamError(f"chatglm.cpp failed while generating: {exc}") from None
            yield token
            past = len(ids)
            ids.append(token)

    def close(self) -> None:
        self._pipeline = None

    def _reserve_compute_memory(self) -> None:
        """Size the compute buffer for the longest generation before any request runs.

        chatglm.cpp 0.4.2 corrupts its heap when a decoding step needs a bigger buffer than
        the one it has (a short prompt, then a long answer). Buffers never shrink, so one
        decoding step at the last position makes every later one fit.
        """
        last = self.max_length - 1
        try:
            self._pipeline.model.generate_next_token(
                [self._pipeline.model.config.eos_token_id] * self.max_length,
                None,
                self._module.GenerationConfig(do_sample=False),
                last,
                last,
            )
        except RuntimeError:  # the cache holds no real keys yet, so the logits may be NaN
            pass


def _encodable(text: str) -> str:
    """Replace lone surrogates (valid in JSON, not in UTF-8), which the binding refuses."""
    return text.encode("utf-8", "replace").decode("utf-8")
