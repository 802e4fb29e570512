"""Which of a client's unread fields (those the proxy does not read itself) a server.cpp of
each generation takes. Pure.

A current llama-server reads many fields of its own (``json_schema``, ``samplers``,
``return_progress``, ``timings_per_token``, ``dry_*``, ``xtc_*``…) and gives a mistyped one
its default: every unread field goes to it as it came. The old generations (PowerInfer's
server, llama.cpp of December 2023) read a few beyond the proxy's, and abort on one of the
wrong JSON type: those few are checked and sent, any other is refused by its name.
"""

from __future__ import annotations

from typing import Mapping, Optional

from proxy.backends.servercpp.kinds import ServerKind
from proxy.core.errors import InvalidRequestError

NUMBER, INTEGER, BOOLEAN = "a number", "an integer", "true or false"
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
