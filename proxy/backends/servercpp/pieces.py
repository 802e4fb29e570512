"""Token pieces as text, when a character's bytes are spread over several tokens.

A byte-fallback token (the first byte of a character outside the vocabulary: Chinese text,
an emoji) is no text on its own. Pieces are reported whole instead: the character goes to
the first of its tokens and the others get ``""``, so the pieces always join to the text.
"""

from __future__ import annotations

import codecs
from typing import Iterable


def whole_pieces(tokens: Iterable[tuple[int, bytes]]) -> list:
    """``(id, text)`` for each ``(id, bytes)``; an unfinished last character becomes U+FFFD."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pieces: list = []
    start, text = 0, ""
    for token, data in tokens:
        if not decoder.getstate()[0]:
            start, text = len(pieces), ""
        text += decoder.decode(data)
        pieces.append([token, ""])
        pieces[start][1] = text
    if decoder.getstate()[0]:
        pieces[start][1] = text + decoder.decode(b"", final=True)
    return [tuple(piece) for piece in pieces]


def server_piece(piece: object) -> bytes:
    """A piece as current llama-server sends it: text, or a list of byte values."""
    if isinstance(piece, str):
        return piece.encode("utf-8", "replace")
    if isinstance(piece, list) and all(isinstance(b, int) and 0 <= b < 256 for b in piece):
        return bytes(piece)
    return b""
