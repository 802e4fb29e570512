"""SearXNG's JSON API as web_search speaks it: the query's URL, the hits read from its answer
(bounded, each page once, anything that is no hit passed over), and the list a model
reads."""

from __future__ import annotations

import json

import pytest

from proxy.core.tooluse import Source
from proxy.tools.searxng import hits, listing, search_url


@pytest.mark.parametrize(
    "base, query, url",
    [
        ("http://127.0.0.1:8888", "llama", "http://127.0.0.1:8888/search?q=llama&format=json"),
        (
            "https://search.example/searxng",
            "wool & milk?",
            "https://search.example/searxng/search?q=wool+%26+milk%3F&format=json",
        ),
        ("http://s", "ünï 日本", "http://s/search?q=%C3%BCn%C3%AF+%E6%97%A5%E6%9C%AC&format=json"),
    ],
)
def test_a_query_asks_for_json(base, query, url):
    assert search_url(base, query) == url


def answer(*results) -> bytes:
    """A SearXNG answer holding ``results``, with the fields it has besides."""
    return json.dumps(
        {
            "query": "q",
            "number_of_results": 0,
            "results": list(results),
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }
    ).encode()


LLAMA = {
    "url": "https://en.wikipedia.org/wiki/Llama",
    "title": "Llama - Wikipedia",
    "content": "The llama is a domesticated\n  South American camelid.",
    "engine": "wikipedia",
    "score": 3.0,
}


@pytest.mark.parametrize(
    "results, most, found",
    [
        (
            [LLAMA],
            5,
            (
                Source(
                    "https://en.wikipedia.org/wiki/Llama",
                    "Llama - Wikipedia",
                    "The llama is a domesticated South American camelid.",
                ),
            ),
        ),
        (
            [{"url": f"https://e.example/{n}"} for n in range(30)],
            3,
            tuple(Source(f"https://e.example/{n}") for n in range(3)),
        ),
        # each page once; what is no hit passed over, not counted
        (
            [
                LLAMA,
                LLAMA,
                "x",
                {"title": "no url"},
                {"url": 7},
                {"url": "magnet:?xt=1"},
                {"url": "https://e.example/" + "a" * 3000},
                {"url": "https://e.example/b"},
            ],
            2,
            (
                Source(
                    LLAMA["url"],
                    "Llama - Wikipedia",
                    "The llama is a domesticated South American camelid.",
                ),
                Source("https://e.example/b"),
            ),
        ),
        (
            [{"url": "https://e.example/", "title": 3, "content": None}],
            5,
            (Source("https://e.example/"),),
        ),
        (
            [{"url": "https://e.example/", "title": "t" * 300, "content": "c" * 600}],
            5,
            (Source("https://e.example/", "t" * 199 + "…", "c" * 499 + "…"),),
        ),
        ([], 5, ()),
    ],
)
def test_an_answers_hits_are_read_bounded(results, most, found):
    assert hits(answer(*results), most) == found


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Too many requests</html>",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"results": {}}',
        b'{"answers": []}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_what_is_not_searxngs_json_is_a_value_error(body):
    with pytest.raises(ValueError):
        hits(body, 5)


def test_the_hits_are_a_numbered_list_a_model_reads():
    sources = (
        Source("https://en.wikipedia.org/wiki/Llama", "Llama - Wikipedia", "The llama is…"),
        Source("https://e.example/b"),
    )
    assert listing('llama "facts"', sources) == (
        'Web search results for "llama \\"facts\\"":\n\n'
        "1. Llama - Wikipedia\n"
        "   https://en.wikipedia.org/wiki/Llama\n"
        "   The llama is…\n\n"
        "2. https://e.example/b\n"
        "   https://e.example/b"
    )


def test_no_hits_are_said_so():
    assert listing("zzz", ()) == 'No web search results for "zzz".'
