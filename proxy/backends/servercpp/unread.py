"""Which of a client's unread fields (those the proxy does not read itself) a server.cpp of
each generation takes. Pure.

A current llama-server reads many fields of its own (``json_schema``, ``samplers``,
``return_progress``, ``timings_per_token``, ``dry_*``, ``xtc_*``…) and gives a mistyped one
its default: every unread field goes to it as it came, but those that would unsay what the
proxy writes itself (:data:`PROXYS`), and never in place of one the proxy writes. The old
generations (PowerInfer's server, llama.cpp of December 2023) read a few beyond the proxy's,
and abort on one of the wrong JSON type: those few are checked and sent, any other is
refused by its name.
"""

from __future__ import annotations

from typing import Mapping, Optional

from proxy.backends.servercpp.kinds import ServerKind
from proxy.core.errors import InvalidRequestError

NUMBER, INTEGER, BOOLEAN = "a number", "an integer", "true or false"
# the server's fields that say what the proxy writes, reads or counts itself: sent, they would
# unsay it (a prompt of the client's own, a longer answer than the one held for, choices or
# probabilities the proxy does not read), so each is refused with the field that asks for it
PROXYS = {
    "prompt": "the prompt is written from the request's messages",
    "messages": "send a chat to /v1/chat/completions",
    "input_prefix": "send the text before the gap as the prompt",
    "input_suffix": "send the text after the gap as suffix",
    "input_extra": "send other files' chunks to /infill",
    "n_predict": "the answer's length is max_tokens",
    "n_cmpl": "several choices are n",
    "n_probs": "probabilities are logprobs and top_logprobs",
    "post_sampling_probs": "probabilities are logprobs and top_logprobs",
    "response_fields": "the answer is written in the client's API",
    "return_tokens": "the answer is written in the client's API",
}
# what both old generations read of ``POST /completion`` beyond the proxy's own fields
LEGACY_READS = {
    "typical_p": NUMBER,
    "tfs_z": NUMBER,
    "repeat_last_n": INTEGER,
    "penalize_nl": BOOLEAN,
    "ignore_eos": BOOLEAN,
}


def refusal(unread: Mapping, kind: ServerKind, label: str) -> Optional[InvalidRequestError]:
    """Why ``unread`` cannot go to ``label``, a server of ``kind``, or ``None``."""
    for name in unread:
        if name in PROXYS:
            return InvalidRequestError(
                f"{name} is the proxy's to write here: {PROXYS[name]}", param=name
            )
    if not kind.legacy:
        return None
    for name, value in unread.items():
        wanted = LEGACY_READS.get(name)
        if wanted is None:
            return InvalidRequestError(
                f"{name} cannot be served: {label} is a {kind.name} server, which reads no "
                f"such field (it reads {', '.join(LEGACY_READS)} beyond OpenAI's)",
                param=name,
            )
        if not _is(value, wanted):
            return InvalidRequestError(f"'{name}' must be {wanted}", param=name)
    return None


def _is(value: object, wanted: str) -> bool:
    if wanted == BOOLEAN:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if wanted == INTEGER else isinstance(value, (int, float))
