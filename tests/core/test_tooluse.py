"""Where an answer's text cites the pages its hosted tools drew from."""

from __future__ import annotations

import pytest

from proxy.core.tooluse import Source, ToolListing, cited, sources_of

A, B = Source("https://a.example/x", "A"), Source("https://b.example/", "B")


@pytest.mark.parametrize(
    ("text", "sources", "spans"),
    [
        pytest.param("no address here", [A, B], [], id="none-named"),
        pytest.param(
            "see https://b.example/ and https://a.example/x",
            [A, B],
            [(4, 22, B), (27, 46, A)],
            id="in-the-texts-order",
        ),
        pytest.param(
            "https://a.example/x twice: https://a.example/x",
            [A, A],
            [(0, 19, A)],
            id="the-first-time-once",
        ),
    ],
)
def test_a_page_is_cited_where_the_text_writes_its_address(text, sources, spans):
    assert cited(text, sources) == spans


def test_a_listing_draws_from_no_page():
    class Run:
        sources = (A, B)

    assert sources_of([Run(), ToolListing("web", ())]) == [A, B]
