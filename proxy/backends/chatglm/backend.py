"""The chatglm backend: a chatglm.cpp model inside the proxy's process.

The model has one KV cache, so generations take turns: each holds the one slot of an
:class:`Admission` for the whole generation, a stream's included. The lease is taken inside
the stream's generator and handed back when it ends or is closed (the client went away).
One model lives in each process, so the proxy runs a single worker (``--workers 1``);
``/health`` never waits for the model.
Tokenizing needs no gate: the tokenizer is read-only, and the binding never releases the GIL,
so no two native calls run at once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from proxy.backends.base import Backend
from proxy.backends.chatglm import translation
from proxy.backends.chatglm.model import UNLIMITED, LoadedModel
from proxy.backends.chatglm.reply import ReplyFilter, TextDecoder
from proxy.backends.structured import replies
from proxy.config.files import digest
from proxy.config.settings import Settings
from proxy.core import images
from proxy.core.answers import (
    Chunk,
    Completion,
    Health,
    ModelCard,
    ModelInfo,
    Usage,
    assembled,
    pieces,
)
from proxy.core.audio import unheard
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest, amended
from proxy.queue.admission import Admission
from proxy.queue.fair import SlotCount

logger = logging.getLogger(__name__)


def load_backend(
    settings: Settings, path: str = "", served_name: str = "", reasoning: str = "auto"
) -> "ChatGLMBackend":
    """Load ``path`` (default ``--model``); any reason it cannot serve is a ``ValueError``.

    ``reasoning``: ``think-tags`` tells ``<think>…</think>`` from the answer; chatglm.cpp has
    no chat template to read them from, so ``auto`` is ``none``.
    """
    models, limits = settings.models, settings.limits
    path = path or models.model
    model = LoadedModel.load(path, models.max_length)
    if models.max_context_length >= model.max_length:
        raise ValueError(
            f"--max-context-length {models.max_context_length} leaves no room "
            f"for an answer: {path} holds {model.max_length} tokens"
        )
    admission = Admission(
        f"the model {path}",
        SlotCount(configured=1),
        max_queue=limits.max_queue,
        queue_timeout=limits.queue_timeout,
    )
    return ChatGLMBackend(
        model,
        admission,
        max_context_length=models.max_context_length,
        served_name=served_name or models.model_name,
        thinks=reasoning == "think-tags",
    )


@dataclass(frozen=True)
class Prompt:
    ids: list
    truncated: bool


class ChatGLMBackend(Backend):
    """Chat and completions from one chatglm.cpp model, one generation at a time."""

    name = "chatglm"
    concurrent = False  # one model, one generation at a time: choices take turns

    def __init__(
        self,
        model: LoadedModel,
        admission: Admission,
        *,
        max_context_length: int,
        served_name: str = "",
        thinks: bool = False,
    ) -> None:
        """``thinks``: the model writes ``<think>…</think>`` before its answers."""
        self.model = model
        self.admission = admission
        self.max_context_length = max_context_length
        self.served_name = served_name or model.name
        self.thinks = thinks

    def complete(self, request: GenerationRequest) -> Completion:
        texts, thoughts, calls = [], [], []
        for chunk in self.stream(request):
            texts.append(chunk.text)
            thoughts.append(chunk.reasoning)
            calls += chunk.tool_calls
            last = chunk
        return Completion(
            "".join(texts),
            last.finish_reason,
            last.usage,
            prompt_token_ids=last.prompt_token_ids,
            truncated=last.truncated,
            tool_calls=assembled(calls),
            reasoning="".join(thoughts),
            stop_sequence=last.stop_sequence,
        )

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        chunks = self._generate(request)
        if self.thinks and request.is_chat:
            return self._counting_thoughts(replies.thinking_chunks(chunks, opened=False))
        return chunks

    def _counting_thoughts(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        """The chunks, the last one's usage counting the tokens of the thoughts."""
        thoughts = []
        for chunk in chunks:
            thoughts.append(chunk.reasoning)
            if chunk.finish_reason is not None:
                tokens = len(self.model.tokens("".join(thoughts))) if any(thoughts) else 0
                chunk = amended(chunk, usage=amended(chunk.usage, reasoning_tokens=tokens))
            yield chunk

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(self._prompt(request).ids)

    def _generate(self, request: GenerationRequest) -> Iterator[Chunk]:
        sampling = translation.sampling(request)
        prompt = self._prompt(request)
        names = translation.tool_names(request.tools) if request.is_chat else ()
        reply = ReplyFilter(request.stop, names, trim=request.is_chat)
        decoder = TextDecoder(self.model.decode)
        limit = request.max_tokens or UNLIMITED
        generated, end, counted = 0, None, False
        with self.admission.lease(request.caller):
            began = first = time.monotonic()
            for token in self.model.generate(prompt.ids, limit, sampling):
                if not generated:
                    first = time.monotonic()
                if token in self.model.stop_ids:
                    end = token
                    break
                generated += 1
                text = reply.feed(decoder.add(token))
                if text:
                    yield Chunk(text=text, prompt_count=None if counted else len(prompt.ids))
                    counted = True
                if reply.stopped:
                    break
        text = reply.feed(decoder.flush())
        rest, calls = reply.finish(tool_turn=end is not None and end == self.model.observation_id)
        if text + rest:
            yield Chunk(text=text + rest)
        finish = "tool_calls" if calls else "stop" if end is not None or reply.stopped else "length"
        times = {"prompt_ms": (first - began) * 1000, "eval_ms": (time.monotonic() - first) * 1000}
        yield Chunk(
            finish_reason=finish,
            usage=Usage(len(prompt.ids), generated, **times),
            tool_calls=pieces(calls),
            truncated=prompt.truncated,
            prompt_token_ids=tuple(prompt.ids) if request.tokenize else None,
            stop_sequence=reply.stop_word,
        )

    def tokenize(self, text: str, model: Optional[str] = None) -> list:
        decoder = TextDecoder(self.model.decode)
        tokens = [[token, decoder.add(token)] for token in self.model.tokens(text)]
        if tokens:
            tokens[-1][1] += decoder.flush()
        return [tuple(token) for token in tokens]

    def detokenize(self, tokens: Sequence[int], model: Optional[str] = None) -> str:
        unknown = [token for token in tokens if not self.model.is_token(token)]
        if unknown:
            raise InvalidRequestError(
                f"{unknown[0]} is not a token id of {self.model.name}", param="tokens"
            )
        decoder = TextDecoder(self.model.decode)
        return "".join(decoder.add(token) for token in tokens) + decoder.flush()

    def models(self) -> list:
        model, path = self.model, self.model.path
        return [
            ModelInfo(
                self.served_name,
                owned_by="chatglm.cpp",
                card=ModelCard(
                    capabilities=("completion", "tools")
                    if model.supports_tools
                    else ("completion",),
                    context_length=model.max_length,
                    architecture="chatglm",
                    size=os.path.getsize(path),
                    digest=digest(path),
                    modified=os.path.getmtime(path),
                ),
            )
        ]

    def load(self) -> tuple:
        return self.admission.busy()

    def describe(self) -> dict:
        return self.admission.snapshot()

    def probe(self) -> Health:
        return Health(
            True,
            self.name,
            {
                "model": self.served_name,
                "model_type": self.model.type_name,
                "max_length": self.model.max_length,
                **self.admission.snapshot(),
            },
        )

    def close(self) -> None:
        self.model.close()

    def _prompt(self, request: GenerationRequest) -> Prompt:
        """Tokenize the chat or prompt, dropping its oldest tokens beyond --max-context-length."""
        for name in request.unread:
            raise InvalidRequestError(
                f"{name} cannot be served: chatglm.cpp reads no such field", param=name
            )
        if request.suffix is not None:
            raise InvalidRequestError(
                f"suffix cannot be served: {self.model.type_name} models have no "
                "fill-in-the-middle tokens (a code model's, on llama-server, has)",
                param="suffix",
            )
        if request.is_chat:
            if request.images:
                raise images.unseen(
                    request.images[0],
                    request.model or self.served_name,
                    f"{self.model.type_name} models read text only",
                )
            if request.sounds:
                raise unheard(
                    request.sounds[0],
                    request.model or self.served_name,
                    f"{self.model.type_name} models read text only",
                )
            if request.tools and not self.model.supports_tools:
                raise InvalidRequestError(
                    f"{self.model.type_name} models cannot call tools", param="tools"
                )
            turns = translation.turns(request.messages, request.tools)

            def encode(limit: int) -> list:
                return self.model.chat_prompt(turns, limit)
        else:

            def encode(limit: int) -> list:
                return self.model.text_prompt(request.prompt, limit)

        ids = encode(UNLIMITED)
        if len(ids) <= self.max_context_length:
            return Prompt(ids, False)
        logger.info(
            "a prompt of %d tokens was cut to the last %d", len(ids), self.max_context_length
        )
        return Prompt(encode(self.max_context_length), True)
