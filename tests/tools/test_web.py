"""The web tools' own rules, with no socket opened: the tools offered, the model's mistakes
given back as error results, where web_fetch may go (each redirect checked again, each
connection made to the address checked), a page's type and bytes, and the counting. The
calls over real sockets are ``tests/e2e/test_web_tools_e2e.py``'s."""

from __future__ import annotations

import encodings
import pkgutil

import pytest

from proxy.config.catalog import WebSearchSpec
from proxy.core import fetching
from proxy.core.errors import ToolNotFoundError
from proxy.core.fetching import Got
from proxy.core.outbound import public_address
from proxy.core.tooluse import Source
from proxy.tools import web
from proxy.tools.results import ToolResult
from proxy.tools.web import WebTools, _bounded, _content_type, _decoded

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SPEC = WebSearchSpec("http://searxng.internal:8080", max_results=5)
DNS = {
    "public.example": ["93.184.215.14"],
    "other.example": ["93.184.216.34"],
    "lan.example": ["192.168.1.20"],
    "split.example": ["93.184.215.14", "10.0.0.2"],
}


def resolve(host: str) -> list:
    if host in DNS:
        return DNS[host]
    if host[0].isdigit() or ":" in host:
        return [host]
    raise OSError("no such host")


class Site:
    """Stands for the network: what each GET gets, by URL, and each GET asked."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.asked: list = []
        self.headers: dict = {}  # URL -> the headers its GET sent

    def get(self, url, address, deadline, most, headers) -> Got:
        self.asked.append((url.geturl(), address))
        self.headers[url.geturl()] = headers
        return self.answers[url.geturl()]


@pytest.fixture
def site(monkeypatch) -> Site:
    site = Site({})
    monkeypatch.setattr(fetching, "get", site.get)
    return site


def test_the_tools_are_search_and_fetch_unless_fetch_is_off():
    assert [tool.name for tool in WebTools(SPEC).list_tools()] == ["web_search", "web_fetch"]
    off = WebTools(WebSearchSpec("http://s", fetch="off"))
    assert [tool.name for tool in off.list_tools("web", timeout=1)] == ["web_search"]


def test_the_search_tools_schema_says_its_bounds():
    search, fetch = WebTools(WebSearchSpec("http://s", max_results=7)).list_tools()
    assert search.input_schema["required"] == ["query"]
    assert search.input_schema["properties"]["query"]["type"] == "string"
    assert search.input_schema["properties"]["count"]["maximum"] == 7
    assert "up to 7 results" in search.description
    assert fetch.input_schema["required"] == ["url"]


def test_another_server_or_tool_is_not_found():
    tools = WebTools(SPEC)
    with pytest.raises(ToolNotFoundError, match="served as 'web', not 'fs'") as error:
        tools.call("fs", "web_search", {"query": "x"})
    assert error.value.param == "server_label"
    with pytest.raises(ToolNotFoundError, match="not 'search'"):
        tools.list_tools("search")
    with pytest.raises(ToolNotFoundError, match="no tool 'web_fetch'; they are web_search"):
        WebTools(WebSearchSpec("http://s", fetch="off")).call("web", "web_fetch", {"url": "x"})


@pytest.mark.parametrize(
    "tool, arguments, says",
    [
        ("web_search", {}, "arguments.query is required"),
        ("web_search", {"query": 3}, "arguments.query 3 is not of type 'string'"),
        ("web_search", {"query": ""}, "arguments.query"),
        ("web_search", {"query": "q" * 1001}, "is too long"),
        ("web_search", {"query": "   "}, "the query of web_search is empty"),
        ("web_search", {"query": "x", "count": 0}, "arguments.count 0 is less than"),
        ("web_search", {"query": "x", "count": 6}, "arguments.count 6 is greater than"),
        ("web_search", {"query": "x", "count": "3"}, "arguments.count"),
        ("web_search", {"query": "x", "lang": "en"}, "'lang' was unexpected"),
        ("web_search", ["x"], "must be an object, got list"),
        ("web_fetch", {}, "arguments.url is required"),
        ("web_fetch", {"url": "u" * 8193}, "is too long"),
        ("web_fetch", {"url": "file:///etc/passwd"}, "http(s) URLs only, not 'file:///etc/pas"),
        ("web_fetch", {"url": "example.org/page"}, "http(s) URLs only"),
        ("web_fetch", {"url": "http://me:pw@public.example/"}, "holds a user name or password"),
    ],
)
def test_the_models_mistake_is_an_error_result_saying_why(site, tool, arguments, says):
    result = WebTools(SPEC, resolve=resolve).call("web", tool, arguments)
    assert result.is_error
    assert says in result.text
    assert site.asked == []


@pytest.mark.parametrize(
    "url, host",
    [
        ("http://lan.example/page", "lan.example"),
        ("http://split.example/page", "split.example"),
        ("http://127.0.0.1:8080/admin", "127.0.0.1"),
        ("http://[::1]/", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://nowhere.example/", "nowhere.example"),
    ],
)
def test_a_page_off_the_internet_is_refused_naming_its_host_alone(site, url, host):
    result = WebTools(SPEC, resolve=resolve).call("web", "web_fetch", {"url": url})
    assert result.is_error
    assert result.text.startswith(f"the host {host} of ")
    assert "192.168.1.20" not in result.text and "10.0.0.2" not in result.text
    assert site.asked == []


def test_the_search_service_is_sent_the_calls_trace_context_and_a_page_never(site, monkeypatch):
    """The search service is the operator's: its spans join the request's trace. A page is
    anyone's: it learns nothing of the trace."""
    monkeypatch.setattr(web, "get", site.get)  # the search's GET, as the fetch's is
    searched = f"{SPEC.searxng}/search?q=llamas&format=json"
    site.answers[searched] = Got(200, "application/json", body=b'{"results": []}')
    site.answers["http://public.example/a"] = Got(200, "text/plain", body=b"hello")
    tools, context = WebTools(SPEC, resolve=resolve), {"traceparent": PARENT}
    tools.call("web", "web_search", {"query": "llamas"}, trace_context=context)
    tools.call("web", "web_fetch", {"url": "http://public.example/a"}, trace_context=context)
    assert site.headers[searched]["traceparent"] == PARENT
    assert "traceparent" not in site.headers["http://public.example/a"]


def test_a_page_is_fetched_from_the_address_checked(site):
    site.answers["http://public.example/a"] = Got(200, "text/plain", body=b"hello")
    result = WebTools(SPEC, resolve=resolve).call(
        "web", "web_fetch", {"url": " http://public.example/a "}
    )
    assert result == ToolResult(
        "URL: http://public.example/a\n\nhello", sources=(Source("http://public.example/a"),)
    )
    assert site.asked == [("http://public.example/a", "93.184.215.14")]


def test_each_redirect_is_checked_as_the_first_url_was(site):
    site.answers["http://public.example/a"] = Got(302, location="http://other.example/b")
    site.answers["http://other.example/b"] = Got(301, location="/c")
    site.answers["http://other.example/c"] = Got(307, location="http://lan.example/admin")
    result = WebTools(SPEC, resolve=resolve).call(
        "web", "web_fetch", {"url": "http://public.example/a"}
    )
    assert result.is_error
    assert result.text.startswith("the host lan.example of 'http://lan.example/admin' is not")
    assert site.asked == [
        ("http://public.example/a", "93.184.215.14"),
        ("http://other.example/b", "93.184.216.34"),
        ("http://other.example/c", "93.184.216.34"),
    ]


@pytest.mark.parametrize(
    "location, says",
    [
        ("file:///etc/passwd", "redirects to 'file:///etc/passwd', which is no http(s) URL"),
        ("http://me:pw@public.example/", "holds a user name or password"),
    ],
)
def test_a_redirect_anywhere_but_the_web_is_refused(site, location, says):
    site.answers["http://public.example/a"] = Got(302, location=location)
    result = WebTools(SPEC, resolve=resolve).call(
        "web", "web_fetch", {"url": "http://public.example/a"}
    )
    assert result.is_error and says in result.text
    assert len(site.asked) == 1


def test_under_any_a_page_is_reached_by_its_hosts_name(site):
    site.answers["http://lan.example/a"] = Got(200, "application/json", body=b"[1]")
    tools = WebTools(WebSearchSpec("http://s", fetch="any"), resolve=resolve)
    assert tools.call("web", "web_fetch", {"url": "http://lan.example/a"}).text.endswith("[1]")
    assert site.asked == [("http://lan.example/a", None)]


class Counted:
    def __init__(self) -> None:
        self.calls: list = []

    def tool_called(self, server: str, tool: str, seconds: float, error: str = "") -> None:
        self.calls.append((server, tool, error))


def test_every_call_is_counted_by_tool_and_error(site):
    site.answers["http://public.example/a"] = Got(200, "text/plain", body=b"ok")
    metrics = Counted()
    tools = WebTools(SPEC, metrics=metrics, resolve=resolve)
    tools.call("web", "web_fetch", {"url": "http://public.example/a"})
    tools.call("web", "web_fetch", {"url": "http://lan.example/a"})
    tools.call("web", "web_search", {})
    with pytest.raises(ToolNotFoundError):
        tools.call("web", "web_browse", {})
    assert metrics.calls == [
        ("web", "web_fetch", ""),
        ("web", "web_fetch", "tool_reported"),
        ("web", "web_search", "tool_reported"),
        ("web", "", "tool_not_found"),
    ]


@pytest.mark.parametrize(
    "header, kind, charset",
    [
        ("text/html; charset=UTF-8", "text/html", "utf-8"),
        ("Text/HTML", "text/html", "utf-8"),
        ('text/plain; charset="ISO-8859-1"', "text/plain", "iso-8859-1"),
        ("text/plain; charset=klingon", "text/plain", "utf-8"),
        ("text/html; charset=zlib", "text/html", "utf-8"),  # a codec, not a text encoding
        ("text/html; charset=base64", "text/html", "utf-8"),
        ("text/html; charset=rot13", "text/html", "utf-8"),
        ("text/html; charset=undefined", "text/html", "utf-8"),
        ("application/ld+json", "application/ld+json", "utf-8"),
        ("image/png", "image/png", "utf-8"),
        ("", "", "utf-8"),
    ],
)
def test_a_content_type_is_read_for_its_type_and_charset(header, kind, charset):
    assert _content_type(header) == (kind, charset)


@pytest.mark.parametrize(
    "header, body, text, is_error",
    [
        ("text/markdown", b"# Notes", "# Notes", False),
        ("text/csv", b"a,b", "a,b", False),
        ("application/xml", b"<a/>", "<a/>", False),
        ("application/problem+json", b"{}", "{}", False),
        (
            "application/pdf",
            b"%PDF",
            "is application/pdf: web_fetch reads HTML, text and JSON",
            True,
        ),
        ("", b"??", "is of no type it names", True),
    ],
)
def test_a_page_is_read_by_its_type(site, header, body, text, is_error):
    site.answers["http://public.example/a"] = Got(200, header, body=body)
    result = WebTools(SPEC, resolve=resolve).call(
        "web", "web_fetch", {"url": "http://public.example/a"}
    )
    assert text in result.text and result.is_error is is_error


@pytest.mark.parametrize(
    "text, most, bounded",
    [
        ("short", 10, ("short", False)),
        ("exactly10!", 10, ("exactly10!", False)),
        ("ünïcödé", 4, ("ün", True)),  # a character is never split
        ("日本語", 5, ("日", True)),
    ],
)
def test_text_is_bounded_between_characters(text, most, bounded):
    assert _bounded(text, most) == bounded


@pytest.mark.parametrize(
    "body, charset, cut, text",
    [
        ("café".encode(), "utf-8", False, "café"),
        ("café".encode()[:-1], "utf-8", True, "caf"),  # the cut split the é: left out
        ("café".encode()[:-1], "utf-8", False, "caf\ufffd"),  # a page that ends so: shown
        ("café".encode("latin-1"), "iso-8859-1", False, "café"),
    ],
)
def test_a_body_is_decoded_and_a_character_its_cut_split_left_out(body, charset, cut, text):
    assert _decoded(body, charset, cut) == text


@pytest.mark.parametrize(
    "host, address",
    [
        ("public.example", "93.184.215.14"),
        ("8.8.8.8", "8.8.8.8"),
        ("lan.example", None),
        ("split.example", None),
        ("127.0.0.1", None),
        ("gone.example", None),
    ],
)
def test_a_host_has_a_public_address_only_if_all_of_its_are(host, address):
    assert public_address(host, resolve) == address


def test_a_name_that_cannot_be_encoded_has_no_address():
    def unencodable(host):
        raise UnicodeError("label too long")

    assert public_address("x" * 100 + ".example", unencodable) is None


@pytest.mark.parametrize("codec", sorted(m.name for m in pkgutil.iter_modules(encodings.__path__)))
@pytest.mark.parametrize("cut", [False, True])
def test_every_charset_a_page_may_name_reads_as_text(codec, cut):
    body = bytes(range(256)) * 4 + b"<p>hi</p>"
    _, charset = _content_type(f"text/html; charset={codec}")
    assert isinstance(_decoded(body, charset, cut), str)
