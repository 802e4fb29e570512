"""A small GBNF reader for tests: does a grammar admit a text, and random texts it admits.

It reads the subset the proxy writes (rules, ``|``, sequences, string literals, character
classes, groups, ``?``, ``*``, ``+``) and matches by recursive descent over sets of end
positions, so ambiguity costs time, never a wrong answer.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

TOKEN = re.compile(r'\s*(::=|\||\(|\)|[?*+]|"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|[a-z0-9-]+)')


def _unescape(body: str) -> str:
    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|.)",
        lambda m: (
            chr(int(m.group(1)[1:], 16))
            if m.group(1)[0] == "x"
            else {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1))
        ),
        body,
    )


def _class(body: str):
    negated = body.startswith("^")
    body = body[negated:]
    items, index = [], 0
    chars = []
    while index < len(body):
        if body[index] == "\\":
            match = re.match(r"\\(x[0-9a-fA-F]{2}|.)", body[index:])
            chars.append(_unescape(match.group()))
            index += match.end()
        else:
            chars.append(body[index])
            index += 1
    index = 0
    while index < len(chars):
        if index + 2 < len(chars) and chars[index + 1] == "-":
            items.append((chars[index], chars[index + 2]))
            index += 3
        else:
            items.append((chars[index], chars[index]))
            index += 1
    return ("class", negated, tuple(items))


class Grammar:
    def __init__(self, text: str) -> None:
        self.rules = {}
        for line in text.strip().splitlines():
            name, _, body = line.partition("::=")
            tokens = TOKEN.findall(body)
            self._tokens, self._pos = tokens, 0
            self.rules[name.strip()] = self._alternation()
            assert self._pos == len(tokens), line

    def _alternation(self):
        options = [self._sequence()]
        while self._pos < len(self._tokens) and self._tokens[self._pos] == "|":
            self._pos += 1
            options.append(self._sequence())
        return ("alt", tuple(options))

    def _sequence(self):
        items = []
        while self._pos < len(self._tokens) and self._tokens[self._pos] not in ("|", ")"):
            token = self._tokens[self._pos]
            self._pos += 1
            if token == "(":
                item = self._alternation()
                assert self._tokens[self._pos] == ")"
                self._pos += 1
            elif token.startswith('"'):
                item = ("lit", _unescape(token[1:-1]))
            elif token.startswith("["):
                item = _class(token[1:-1])
            else:
                item = ("ref", token)
            while self._pos < len(self._tokens) and self._tokens[self._pos] in "?*+":
                item = ("rep", self._tokens[self._pos], item)
                self._pos += 1
            items.append(item)
        return ("seq", tuple(items))

    def admits(self, text: str) -> bool:
        @lru_cache(maxsize=None)
        def ends(node, start: int) -> frozenset:
            kind = node[0]
            if kind == "lit":
                return (
                    frozenset([start + len(node[1])])
                    if text.startswith(node[1], start)
                    else frozenset()
                )
            if kind == "class":
                if start >= len(text):
                    return frozenset()
                inside = any(low <= text[start] <= high for low, high in node[2])
                return frozenset([start + 1]) if inside != node[1] else frozenset()
            if kind == "ref":
                return ends(self.rules[node[1]], start)
            if kind == "alt":
                return frozenset().union(*(ends(option, start) for option in node[1]))
            if kind == "seq":
                positions = frozenset([start])
                for item in node[1]:
                    positions = (
                        frozenset().union(*(ends(item, p) for p in positions))
                        if positions
                        else positions
                    )
                return positions
            _, operator, item = node
            found = frozenset([start]) if operator in "?*" else frozenset()
            frontier = ends(item, start)
            found |= frontier
            while operator != "?" and frontier:
                frontier = frozenset().union(*(ends(item, p) for p in frontier)) - found
                found |= frontier
            return found

        return len(text) in ends(self.rules["root"], 0)

    def sample(self, chooser: random.Random, depth: int = 12) -> str:
        """A random text of the language, shortest choices once ``depth`` runs out."""

        def walk(node, budget: int) -> str:
            kind = node[0]
            if kind == "lit":
                return node[1]
            if kind == "class":
                pool = [
                    chr(c)
                    for c in range(32, 127)
                    if any(low <= chr(c) <= high for low, high in node[2]) != node[1]
                ]
                return chooser.choice(pool)
            if kind == "ref":
                return walk(self.rules[node[1]], budget - 1)
            if kind == "alt":
                options = (
                    node[1]
                    if budget > 0
                    else (min(node[1], key=lambda option: self._size(option, frozenset())),)
                )
                return walk(chooser.choice(options), budget)
            if kind == "seq":
                return "".join(walk(item, budget) for item in node[1])
            _, operator, item = node
            low = 1 if operator == "+" else 0
            high = 1 if operator == "?" else 3
            count = chooser.randint(low, high if budget > 0 else low)
            return "".join(walk(item, budget) for _ in range(count))

        return walk(self.rules["root"], depth)

    def _size(self, node, seen: frozenset) -> int:
        """How much a node asks for at least, to pick the cheapest way out of recursion."""
        kind = node[0]
        if kind == "ref":
            if node[1] in seen:
                return 1000
            return 1 + self._size(self.rules[node[1]], seen | {node[1]})
        if kind in ("lit", "class"):
            return 1
        if kind == "alt":
            return min(self._size(option, seen) for option in node[1])
        if kind == "seq":
            return sum(self._size(item, seen) for item in node[1])
        return 0 if node[1] in "?*" else self._size(node[2], seen)
