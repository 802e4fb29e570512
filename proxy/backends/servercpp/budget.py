"""Token limits the proxy keeps: the context a prompt must fit, the limit old servers
overshoot, and the bound an answer whose request sets none is told.

A chat far beyond a model's context is known without tokenizing it (which takes the server
time in proportion to the prompt: over a second for 3 MiB), and the oldest servers do not
refuse a prompt longer than their context: they cut it and answer. No tokenizer's tokens
average near :data:`~proxy.core.textsize.MOST_BYTES_PER_TOKEN` bytes over real text, nor so
many characters (each at least a byte), so a chat of more characters than that many times
the context cannot fit, and is refused at once.

PowerInfer's server and llama.cpp of 2023 generate one token more than ``n_predict``, and
at least three, so the proxy streams with ``n_probs`` and counts the tokens itself. Each
partial chunk lists its tokens with their exact pieces (a lone byte written ``byte: \\xNN``),
except that a character spelt in byte tokens lists only its last byte: the others are
counted from the chunk's text. The answer ends after ``limit`` tokens; the stream is read to
its end (a token or two more) for the server's own prompt count.

A request that sets no length is told one all the same (:func:`unasked_bound`), or the
server generates until the model stops, and a model that never does runs for ever: every
old server, and a current one started with ``--context-shift``, shifts its context when
it fills and goes on. An old server is told what its prompt (the proxy's own text, counted
by its ``/tokenize``) leaves of its slot's context, less :data:`OLD_ROOM`: its answer takes
the one token more it generates, and it shifts once the slot's tokens reach the context
(measured on both: a prompt of 66 tokens in a slot of 512 tokens, told 444, ends at 511
tokens with no shift; told 445, it shifts). A current server is told its context itself:
its prompt is not counted (the chat layer renders it, and counting costs the server a
second tokenization), and it stops at a full context on its own unless it shifts, then
after at most one shift (measured: told 512 in a slot of 512, it ends after 446 tokens, or
after 512 with one shift). Either way no answer is longer than the context, which a
budget's hold counts on (:mod:`proxy.access.holds`).
"""

from __future__ import annotations

import codecs
import re
from typing import Iterable, Iterator, Optional, Sequence

from proxy.core.answers import Chunk, Usage
from proxy.core.errors import ContextLengthError
from proxy.core.textsize import MOST_BYTES_PER_TOKEN
from proxy.core.types import GenerationRequest, amended

BYTE_PIECE = re.compile(r"byte: \\x([0-9a-fA-F]{1,2})")


def piece_bytes(piece: str) -> bytes:
    """The bytes of one token as an old server names it in ``completion_probabilities``."""
    match = BYTE_PIECE.fullmatch(piece)
    return bytes([int(match.group(1), 16)]) if match else piece.encode("utf-8")


def chunk_tokens(text: str, pieces: Sequence[str]) -> list:
    """``(bytes, listed)`` for each token behind a chunk's ``text``, in order.

    ``pieces`` are the tokens the server listed. A listed lone continuation byte ends a
    character whose earlier bytes were unlisted tokens of their own; text the pieces do not
    account for counts as one more unlisted token.
    """
    data = text.encode("utf-8")
    tokens, at = [], 0
    for piece in pieces:
        token = piece_bytes(piece)
        size = _utf8_length(data[at]) if at < len(data) else 0
        if (
            len(token) == 1
            and 0x80 <= token[0] < 0xC0
            and size > 1
            and data[at + size - 1 : at + size] == token
        ):
            tokens += [(data[i : i + 1], False) for i in range(at, at + size - 1)]
            at += size - 1
        tokens.append((token, True))
        at += len(token)
    if at < len(data):
        tokens.append((data[at:], False))
    return tokens


def _utf8_length(lead: int) -> int:
    return 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if lead >= 0xF0 else 1


def whole_characters(data: bytes) -> str:
    """Decode ``data``, leaving out a character its last bytes only begin (as servers do)."""
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def limited(chunks: Iterable[Chunk], limit: int, *, keep_logprobs: bool) -> Iterator[Chunk]:
    """End ``chunks`` after ``limit`` tokens with ``finish_reason`` ``length``.

    Each chunk's ``logprobs`` must list its tokens; they are dropped from what is yielded
    unless the client asked for them.
    """
    used = 0
    chunks = iter(chunks)
    for chunk in chunks:
        if chunk.finish_reason is not None:
            yield _shown(chunk, keep_logprobs)
            return
        tokens = chunk_tokens(chunk.text, [entry.token for entry in chunk.logprobs])
        if used + len(tokens) < limit:
            used += len(tokens)
            yield _shown(chunk, keep_logprobs)
            continue
        taken = tokens[: limit - used]
        text = (
            chunk.text
            if len(taken) == len(tokens)
            else whole_characters(b"".join(data for data, _ in taken))
        )
        listed = sum(1 for _, was_listed in taken if was_listed)
        yield _shown(Chunk(text=text, logprobs=chunk.logprobs[:listed]), keep_logprobs)
        yield _final(chunks, limit)
        return


def _final(rest: Iterator[Chunk], limit: int) -> Chunk:
    """The finish chunk once the limit is reached, with the server's prompt count."""
    last = Chunk(finish_reason="length", usage=Usage(0, limit))
    for chunk in rest:
        if chunk.finish_reason is not None:
            last = chunk
            break
    usage = last.usage or Usage()
    within = usage.completion_tokens <= limit and last.finish_reason != "length"
    return amended(
        last,
        text="",
        logprobs=(),
        finish_reason=last.finish_reason if within else "length",
        stop_sequence=last.stop_sequence if within else None,
        usage=amended(
            usage, completion_tokens=min(usage.completion_tokens, limit) if within else limit
        ),
    )


def _shown(chunk: Chunk, keep_logprobs: bool) -> Chunk:
    return chunk if keep_logprobs or not chunk.logprobs else amended(chunk, logprobs=())


def fewest_tokens(request: GenerationRequest) -> int:
    """A number of tokens ``request``'s prompt certainly takes, from its text's length."""
    characters = (
        len(request.prompt)
        if request.prompt is not None
        else sum(len(message.content) for message in request.messages)
    )
    return characters // MOST_BYTES_PER_TOKEN


def check_fits(request: GenerationRequest, context: Optional[int]) -> None:
    """Refuse ``request`` when its prompt is far beyond ``context`` tokens (``None``: a
    context not known)."""
    if context is None:
        return
    fewest = fewest_tokens(request)
    if fewest > context:
        raise ContextLengthError(fewest, context, at_least=True)


OLD_ROOM = 2  # tokens of a slot an old server's answer leaves free: it never shifts then
OLD_FEWEST = 3  # the fewest tokens of n_predict an old server honours (fewer: more tokens)


def unasked_bound(context: Optional[int], prompt: Optional[int]) -> Optional[int]:
    """The tokens of answer a generation whose request sets none is told: what a prompt of
    ``prompt`` tokens leaves of ``context`` on an old server (less :data:`OLD_ROOM`), the
    whole ``context`` where the prompt is not counted (``None``); ``None`` where the context
    is not known. A prompt that leaves an old server no room for an answer is refused."""
    if context is None or prompt is None:
        return context
    left = context - prompt - OLD_ROOM
    if left < OLD_FEWEST:
        raise ContextLengthError(prompt, context)
    return left
