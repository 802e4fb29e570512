"""SearXNG's JSON API as ``web_search`` speaks it: the URL of a query
(``<base>/search?q=…&format=json``), its answer's hits read into :class:`Source` values,
and the hits as the list a model reads. What a hit says is data, never followed. Pure.
"""

from __future__ import annotations

import json
from typing import Iterable
from urllib.parse import urlencode

from proxy.core.addresses import http_parts
from proxy.core.tooluse import Source

LONGEST_TITLE = 200  # characters of a hit's title kept
LONGEST_SNIPPET = 500  # characters of a hit's snippet kept
LONGEST_URL = 2048  # characters of a hit's URL; a longer one is no page to cite


def search_url(base: str, query: str) -> str:
    """The URL that asks the SearXNG instance at ``base`` for ``query``'s hits as JSON."""
    return f"{base}/search?{urlencode({'q': query, 'format': 'json'})}"


def hits(body: bytes, most: int) -> tuple:
    """The first ``most`` hits of a SearXNG answer, as :class:`Source` values, each page
    once; a hit with no http(s) URL is none. A body that is not SearXNG's JSON is a
    ``ValueError``."""
    try:
        answer = json.loads(body)
    except RecursionError:
        raise ValueError("nested too deep") from None
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise ValueError("no list of results")
    found: dict = {}
    for result in results:
        if len(found) == most:
            break
        url = result.get("url") if isinstance(result, dict) else None
        if not isinstance(url, str) or len(url) > LONGEST_URL or http_parts(url) is None:
            continue
        if url not in found:
            found[url] = Source(
                url,
                _shortened(result.get("title"), LONGEST_TITLE),
                _shortened(result.get("content"), LONGEST_SNIPPET),
            )
    return tuple(found.values())


def listing(query: str, sources: Iterable[Source]) -> str:
    """The hits as a numbered list a model reads: each one's title, URL and snippet."""
    entries = [
        "\n".join(
            line
            for line in (f"{n}. {hit.title or hit.url}", f"   {hit.url}", _indented(hit.snippet))
            if line
        )
        for n, hit in enumerate(sources, 1)
    ]
    if not entries:
        return f"No web search results for {json.dumps(query, ensure_ascii=False)}."
    head = f"Web search results for {json.dumps(query, ensure_ascii=False)}:"
    return "\n\n".join([head, *entries])


def _shortened(value: object, most: int) -> str:
    """``value``'s text on one line, whitespace collapsed, at most ``most`` characters."""
    if not isinstance(value, str):
        return ""
    text = " ".join(value.split())
    return text if len(text) <= most else text[: most - 1] + "…"


def _indented(snippet: str) -> str:
    return f"   {snippet}" if snippet else ""
