"""What each API module gives the app, in one value: its blueprint, what the page says of
it and the shape of its errors. ``app.py`` registers every module's value the same way, so
adding a client API is one module and one line there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from flask import Blueprint
from werkzeug.routing import Rule

from proxy.core.errors import ProxyError

SHOWN_METHODS = ("GET", "POST", "DELETE")  # HEAD and OPTIONS come with them


@dataclass(frozen=True)
class Routes:
    """One module's routes as the app registers them."""

    blueprint: Blueprint
    summary: str  # what the page's endpoint list says of them
    error_body: Optional[Callable[[ProxyError], dict]] = None  # None: OpenAI's shape


def endpoints(rules: Iterable[Rule], groups: Iterable[Routes]) -> list:
    """Each group's summary and its routes (``METHOD path``, in the URL map's order), for
    the page: a path served with and without ``/v1`` is listed once, by its ``/v1`` form."""
    rules = list(rules)
    listed = []
    for group in groups:
        name = group.blueprint.name
        own = [rule for rule in rules if rule.endpoint.partition(".")[0] == name]
        paths = {rule.rule for rule in own}
        shown = []
        for rule in own:
            if "/v1" + rule.rule in paths:
                continue  # the same view at /v1<path> stands for it
            methods = "/".join(m for m in SHOWN_METHODS if m in (rule.methods or ()))
            if f"{methods} {rule.rule}" not in shown:
                shown.append(f"{methods} {rule.rule}")
        listed.append((group.summary, shown))
    return listed
