"""A web page's readable text, as ``web_fetch`` gives it to a model: its title, and its
headings, paragraphs, list items and cells as lines, whitespace collapsed; what no reader
reads (scripts, styles, navigation, embedded objects) left out. The page is data: nothing
in it is followed or run. Pure: markup in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

# elements whose content is no text a reader reads (none of them void: each has an end tag)
SKIPPED = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "nav",
        "aside",
        "iframe",
        "object",
        "canvas",
        "select",
    }
)
# elements that start and end a line of their own
BLOCKS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tr",
        "ul",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
)
HEADINGS = {f"h{level}": "#" * level + " " for level in range(1, 7)}
LONGEST_TITLE = 300  # characters of a title kept


@dataclass(frozen=True)
class PageText:
    """A page's title (empty if it has none) and its text."""

    title: str
    text: str


def page_text(markup: str) -> PageText:
    """``markup``'s title and readable text. libxml2's HTML parser reads it, in time linear
    in its length whatever it holds (the standard library's is quadratic on some malformed
    markup: half a million ``<a`` took minutes), recovering from what is not HTML as a
    browser would; it fetches nothing the page names."""
    reader = _PageReader()
    parser = etree.HTMLParser(target=reader, recover=True, no_network=True)
    try:
        parser.feed(markup)
        parser.close()
    except etree.LxmlError:  # nothing it could read as HTML: the text read until then
        pass
    reader.end_line()
    title = " ".join("".join(reader.title).split())
    return PageText(title[:LONGEST_TITLE], "\n".join(reader.lines).strip("\n"))


class _PageReader:
    """Collects the lines of a page's text as its tags open and close (the parser's
    target: it is told each element's start and end and each piece of text)."""

    def __init__(self) -> None:
        self.lines: list = []
        self.title: list = []
        self._words: list = []  # the pieces of the line being read
        self._mark = ""  # what the line being read starts with: a heading's #s, an item's -
        self._skipping = 0  # skipped elements open
        self._pre = 0  # preformatted elements open
        self._in_title = False

    def start(self, tag: str, attrs: dict) -> None:
        if tag == "title":
            self._in_title = not self.title and not self._skipping
        elif tag == "body":
            self._in_title = False  # a title never closed ends here
        elif tag in SKIPPED:
            self._skipping += 1
        elif not self._skipping:
            if tag in BLOCKS:
                self.end_line()
            if tag in HEADINGS:
                self._mark = HEADINGS[tag]
            elif tag == "li":
                self._mark = "- "
            elif tag == "pre":
                self._pre += 1
            elif tag in ("td", "th"):
                self._words.append(" ")

    def end(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in SKIPPED:
            self._skipping = max(self._skipping - 1, 0)
        elif not self._skipping and tag in BLOCKS:
            self.end_line()
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
            if tag in HEADINGS or tag == "li":
                self._mark = ""

    def data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self._words.append(data)

    def end_line(self) -> None:
        """The line read so far ends: kept, if it holds any text, after a blank line
        unless it is one more item of a list."""
        text = "".join(self._words)
        self._words = []
        if self._pre:
            text = "\n".join(line.rstrip() for line in text.strip("\n").split("\n"))
        else:
            text = " ".join(text.split())
        if not text.strip():
            return
        item = self._mark == "- "
        if self.lines and not (item and self.lines[-1].startswith("- ")):
            self.lines.append("")
        self.lines.append(self._mark + text)
        self._mark = ""

    def close(self) -> None:
        """The parser's end (what was read is in :attr:`lines`)."""
