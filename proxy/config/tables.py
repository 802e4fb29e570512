"""What every table of a models file is checked for first: no key it does not know, so a
typo is named rather than read as the default. Each table's reader raises its mistakes
through ``fail(key, problem)``, which names the file.
"""

from __future__ import annotations


def no_unknown(table: dict, known: set, prefix: str, fail) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise fail(
            prefix + unknown[0], f"is not a known key; known here: {', '.join(sorted(known))}"
        )
