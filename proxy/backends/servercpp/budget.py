"""Token limits the proxy keeps: the context a prompt must fit, and the limit old servers
overshoot.

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
"""

from __future__ import annotations

import codecs
import re
from typing import Iterable, Iterator, Optional, Sequence

from proxy.core.errors import ContextLengthError
from proxy.core.textsize import MOST_BYTES_PER_TOKEN
from proxy.core.types import Chunk, GenerationRequest, Usage, amended

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
