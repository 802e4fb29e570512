"""Where an answer cites the pages its hosted tools drew from: a model cites a page by
writing its address, and each API marks the span its own way."""

from __future__ import annotations

from typing import Iterable, Sequence

from proxy.core.tooluse import Source


def sources_of(runs: Iterable) -> list:
    """The pages the runs of an answer drew from (its listings draw from none)."""
    return [source for step in runs for source in getattr(step, "sources", ())]


def cited(text: str, sources: Sequence[Source]) -> list:
    """``(start, end, source)`` where ``text`` names a source's URL (the first time it
    does), in the text's order."""
    found = []
    for source in {source.url: source for source in sources}.values():
        start = text.find(source.url)
        if start >= 0:
            found.append((start, start + len(source.url), source))
    return sorted(found, key=lambda span: span[0])
