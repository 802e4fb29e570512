"""Tool-call ids for templates that take only Mistral's.

Clients send earlier calls back with the ids they were given, by whatever server: llama.cpp's
are 32 letters and digits, OpenAI's ``call_…``, Anthropic's ``toolu_…``, Kimi's own
``functions.NAME:0``. Mistral's templates refuse any id that is not nine letters and digits
(their models write such ids themselves); other templates take any id, and some write it
into the prompt as the model knows it. So ids are rewritten only for a template that refuses
the others — it is asked, with :func:`probe` — and then as nine letters and digits derived
from the id, the same every time: a call and its result still match, and a conversation's
next prompt still begins like its last (its cache holds).
"""

from __future__ import annotations

import hashlib
import string

LENGTH = 9
ALPHABET = string.ascii_letters + string.digits
LONG_ID = "call_probe0123456789abcdef"  # as OpenAI writes them: no Mistral id


def template_id(call_id: str) -> str:
    """``call_id`` itself when it is nine letters and digits, else nine derived from it."""
    if len(call_id) == LENGTH and call_id.isascii() and call_id.isalnum():
        return call_id
    number = int.from_bytes(
        hashlib.blake2b(call_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )
    letters = []
    for _ in range(LENGTH):
        number, index = divmod(number, len(ALPHABET))
        letters.append(ALPHABET[index])
    return "".join(letters)


def probe(call_id: str) -> dict:
    """A chat with one earlier call of id ``call_id`` and its result, in OpenAI's shape: a
    template that renders it with :data:`LONG_ID` but not with its short form takes only
    short ids."""
    return {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "probe", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "y"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "probe", "parameters": {"type": "object", "properties": {}}},
            }
        ],
    }
