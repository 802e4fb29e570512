"""The web tools over real sockets, against the stand-in SearXNG (``tests/searxng.py``) and
the pages it serves: a search's hits listed and given as sources, a page read as text, each
call within its deadline and its bytes, a loopback page refused under ``fetch = "public"``
and read under ``"any"``, a failing search service a ToolError that never names its
address, and every call counted."""

from __future__ import annotations

import pytest

from proxy.config.catalog import WebSearchSpec
from proxy.core.errors import ToolServerError, ToolServerUnavailableError, ToolTimeoutError
from proxy.core.tooluse import Source
from proxy.ops.metrics import Metrics
from proxy.tools.web import WebTools
from tests.processes import free_port
from tests.searxng import HUGE, SearXNG

from .test_mcp_servers_e2e import tool_counts

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def searxng():
    with SearXNG() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    return Metrics()


def web(searxng: SearXNG, metrics=None, **bounds) -> WebTools:
    return WebTools(WebSearchSpec(searxng.url, **bounds), metrics=metrics)


def test_a_search_lists_its_hits_and_gives_them_as_sources(searxng):
    result = web(searxng).call("web", "web_search", {"query": "llama facts"})
    assert searxng.queries[-1] == "llama facts"
    assert not result.is_error
    assert result.sources[0] == Source(
        searxng.page("llamas.html"),
        "Llamas of the Andes",
        "Llamas are domesticated South American camelids, kept for wool and as pack animals.",
    )
    assert [source.url for source in result.sources[1:]] == [
        "https://en.wikipedia.org/wiki/Llama",
        "https://www.nationalgeographic.com/animals/mammals/facts/llama",
    ]
    assert result.text.startswith('Web search results for "llama facts":\n\n1. Llamas of the')
    assert "3. Llama facts\n   https://www.nationalgeographic.com/" in result.text


@pytest.mark.parametrize(
    "bounds, arguments, count", [({}, {}, 5), ({"max_results": 20}, {"count": 7}, 7)]
)
def test_a_search_gives_at_most_the_hits_asked_for(searxng, bounds, arguments, count):
    result = web(searxng, **bounds).call("web", "web_search", {"query": "many", **arguments})
    assert [source.title for source in result.sources] == [
        f"Result number {n}" for n in range(1, count + 1)
    ]
    assert f"\n\n{count}. Result number {count}\n" in result.text
    assert f"{count + 1}. " not in result.text


def test_a_search_that_finds_nothing_says_so(searxng):
    result = web(searxng).call("web", "web_search", {"query": "zebra"})
    assert (result.text, result.sources, result.is_error) == (
        'No web search results for "zebra".',
        (),
        False,
    )


@pytest.mark.parametrize(
    "query, error, says",
    [
        ("broken", ToolServerError, "the search service answered 500"),
        ("garbage", ToolServerError, "answered what is not SearXNG's JSON"),
        ("flood", ToolServerError, f"more than the {4 << 20} bytes"),
        ("slow", ToolTimeoutError, "the search service did not answer within 1 s"),
    ],
)
def test_a_failing_search_service_is_a_tool_error_without_its_address(searxng, query, error, says):
    with pytest.raises(error) as failed:
        web(searxng, timeout=1).call("web", "web_search", {"query": query})
    assert says in failed.value.message
    assert searxng.url.split("//")[1] not in str(failed.value)
    assert "127.0.0.1" not in str(failed.value)


def test_a_search_service_that_is_not_there_is_unavailable():
    tools = WebTools(WebSearchSpec(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ToolServerUnavailableError, match="the search service cannot be reached"):
        tools.call("web", "web_search", {"query": "llama"})


def test_a_page_is_read_as_its_text(searxng):
    url = searxng.page("llamas.html")
    result = web(searxng, fetch="any").call("web", "web_fetch", {"url": url})
    assert result.text == (
        f"URL: {url}\nTitle: Llamas of the Andes\n\n"
        "# Llamas of the Andes\n\n"
        "Llamas are domesticated South American camelids, kept for their wool and as pack "
        "animals.\n\n"
        "## Facts\n\n"
        "- They hum.\n"
        "- They weigh up to 200 kg."
    )
    assert result.sources == (Source(url, "Llamas of the Andes"),)
    assert (result.is_error, result.truncated) == (False, False)


@pytest.mark.parametrize(
    "page, text",
    [
        ("notes.txt", "Release notes: web tools.\n"),
        ("facts.json", '{"llamas": 3, "hum": true}'),
        ("latin1.html", "Caf\u00e9 cr\u00e8me"),
    ],
)
def test_text_and_json_are_read_as_they_are(searxng, page, text):
    url = searxng.page(page)
    result = web(searxng, fetch="any").call("web", "web_fetch", {"url": url})
    assert result.text.endswith("\n\n" + text)
    assert not result.is_error


def test_a_redirect_is_followed_and_the_page_named_where_it_ended(searxng):
    result = web(searxng, fetch="any").call("web", "web_fetch", {"url": searxng.page("moved")})
    assert result.sources == (Source(searxng.page("llamas.html"), "Llamas of the Andes"),)
    assert "# Llamas of the Andes" in result.text


@pytest.mark.parametrize(
    "page, says",
    [
        ("loop", "redirects more than 3 times"),
        ("missing.html", "answered 404"),
        ("broken", "answered 500"),
        ("picture.png", "is image/png: web_fetch reads HTML, text and JSON only"),
    ],
)
def test_a_page_that_cannot_be_read_is_an_error_result(searxng, page, says):
    result = web(searxng, fetch="any").call("web", "web_fetch", {"url": searxng.page(page)})
    assert result.is_error
    assert says in result.text


def test_a_redirect_loop_is_left_after_three_redirects(searxng):
    before = len(searxng.paths)
    web(searxng, fetch="any").call("web", "web_fetch", {"url": searxng.page("loop")})
    assert searxng.paths[before:] == ["/pages/loop"] * 4


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_page_is_refused_under_public_without_asking_it(searxng, host):
    url = searxng.page("llamas.html").replace("127.0.0.1", host)
    before = len(searxng.paths)
    result = web(searxng).call("web", "web_fetch", {"url": url})
    assert result.is_error
    assert f"the host {host} of " in result.text
    assert "web_fetch reads pages at public addresses only" in result.text
    if host != "127.0.0.1":
        assert "127.0.0.1" not in result.text
    assert searxng.paths[before:] == []


def test_a_huge_page_is_cut_to_the_bound(searxng):
    bound = 64 * 1024
    result = web(searxng, fetch="any", max_fetch_bytes=bound).call(
        "web", "web_fetch", {"url": searxng.page("huge.html")}
    )
    assert result.truncated and not result.is_error
    assert bound // 2 < len(result.text.encode()) <= bound  # the markup read, less its tags
    assert f"(the page goes on past the first {bound} bytes)" in result.text
    assert HUGE > 40 * bound  # what the page would have been
    assert result.sources[0].title == "A huge page"


def test_a_page_that_drips_ends_at_the_deadline(searxng):
    result = web(searxng, fetch="any", timeout=1).call(
        "web", "web_fetch", {"url": searxng.page("drip.html")}
    )
    assert result.is_error
    assert result.text == "127.0.0.1 did not answer within 1 s"


def test_the_calls_are_counted_as_the_web_servers(searxng, metrics):
    tools = web(searxng, metrics=metrics, fetch="any")
    tools.call("web", "web_search", {"query": "llama"})
    tools.call("web", "web_fetch", {"url": searxng.page("picture.png")})
    with pytest.raises(ToolServerError):
        tools.call("web", "web_search", {"query": "broken"})
    count = tool_counts(metrics)
    assert count("calls_total", server="web", tool="web_search") == 2
    assert count("calls_total", server="web", tool="web_fetch") == 1
    assert count("call_seconds_count", server="web", tool="web_search") == 2
    assert count("errors_total", server="web", tool="web_fetch", error="tool_reported") == 1
    assert count("errors_total", server="web", tool="web_search", error="tool_server_error") == 1
