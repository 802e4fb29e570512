"""GBNF's pieces, and regular expressions as GBNF.

The pieces every grammar the proxy writes is made of: literals, bounded repetition spelt out
with ``?`` alone (what every server.cpp kind's grammar parser knows), and the error of a
schema that cannot be expressed. A JSON Schema ``pattern`` becomes GBNF too: the subset of
regular expressions a grammar can hold (literals, classes and shorthands, groups,
alternation, ``? * + {m,n}``), anchors implied."""

from __future__ import annotations

import re
from typing import Optional

SAFE_CLASS_EXCLUSIONS = '"\\\\\\x00-\\x1f'  # what JSON strings cannot hold unescaped
CLASS_SHORTHANDS = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t"}


def regex_to_gbnf(pattern: str, path: str) -> str:
    """A GBNF expression for the strings ``pattern`` matches in full (anchors implied)."""
    parser = _RegexParser(pattern.removeprefix("^").removesuffix("$"), path)
    expression = parser.alternation()
    if parser.pos != len(parser.text):
        raise parser.unsupported("an unmatched ')'")
    return f"({expression})"


class _RegexParser:
    def __init__(self, text: str, path: str) -> None:
        self.text, self.pos, self.path = text, 0, path

    def unsupported(self, what: str) -> UnsupportedSchemaError:
        return UnsupportedSchemaError("pattern", self.path, f"uses {what}, which is not supported")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def alternation(self) -> str:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return " | ".join(option or '""' for option in options)

    def sequence(self) -> str:
        items = []
        while self.peek() and self.peek() not in "|)":
            items.append(self.quantified(self.atom()))
        return " ".join(items)

    def atom(self) -> str:
        char = self.peek()
        self.pos += 1
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.unsupported("a lookaround or named group")
            inner = self.alternation()
            if self.peek() != ")":
                raise self.unsupported("an unclosed group")
            self.pos += 1
            return f"({inner})"
        if char == "[":
            return self.char_class()
        if char == ".":
            return f"[^{SAFE_CLASS_EXCLUSIONS}]"
        if char == "\\":
            return self.escape()
        if char in "^$":
            raise self.unsupported(f"an anchor '{char}' inside the pattern")
        if char in "*+?{":
            raise self.unsupported(f"a quantifier '{char}' with nothing before it")
        return self.plain(char)

    def plain(self, char: str) -> str:
        if char in '"\\' or ord(char) < 0x20:
            raise self.unsupported("a quote, backslash or control character")
        return literal(char)

    def escape(self) -> str:
        char = self.peek()
        self.pos += 1
        if char in CLASS_SHORTHANDS:
            return f"[{CLASS_SHORTHANDS[char]}]"
        if char in ".-+*?()[]{}|^$/":
            return literal(char)
        raise self.unsupported(f"the escape '\\{char}'")

    def char_class(self) -> str:
        negated = self.peek() == "^"
        self.pos += negated
        body = []
        while self.peek() and (self.peek() != "]" or not body):
            char = self.peek()
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                self.pos += 1
                if escaped in CLASS_SHORTHANDS:
                    body.append(CLASS_SHORTHANDS[escaped])
                    continue
                char = escaped
            if char in '"\\' or ord(char) < 0x20:
                raise self.unsupported("a quote, backslash or control character in a class")
            body.append("\\]" if char == "]" else "\\[" if char == "[" else char)
        if self.peek() != "]":
            raise self.unsupported("an unclosed character class")
        self.pos += 1
        inner = "".join(body)
        return f"[^{inner}{SAFE_CLASS_EXCLUSIONS}]" if negated else f"[{inner}]"

    def quantified(self, atom: str) -> str:
        char = self.peek()
        if char in ("?", "*", "+"):
            self.pos += 1
            return f"{atom}{char}"
        if char != "{":
            return atom
        match = re.match(r"\{(\d+)(,(\d*))?\}", self.text[self.pos :])
        if not match:
            raise self.unsupported("a malformed '{…}' quantifier")
        self.pos += match.end()
        low = int(match.group(1))
        high = low if match.group(2) is None else (int(match.group(3)) if match.group(3) else None)
        try:
            return f"({repeat(atom, low, high)})"
        except ValueError:
            raise self.unsupported(f"a repetition above {MAX_REPEAT}") from None


MAX_REPEAT = 1000  # longest bounded repetition spelt out


class UnsupportedSchemaError(ValueError):
    """A schema keyword the compiler cannot express; ``path`` says where it stands."""

    def __init__(self, keyword: str, path: str, why: str = "is not supported") -> None:
        self.keyword = keyword
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"the JSON Schema keyword '{keyword}'{where} {why}")


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f]", lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'


def repeat(item: str, low: int, high: Optional[int]) -> str:
    """``item`` from ``low`` to ``high`` times (``None``: no upper bound), with ``?`` only."""
    if high is not None and (high < low or high > MAX_REPEAT):
        raise ValueError(f"cannot repeat between {low} and {high} times")
    parts = [item] * low
    if high is None:
        parts.append(f"({item})*")
    elif high > low:
        optional = ""
        for _ in range(high - low):
            optional = f"({item} {optional})?" if optional else f"({item})?"
        parts.append(optional)
    return " ".join(parts) if parts else '""'
