"""A model's filters (``filters`` in the models file) on the body sent to its upstream: the
fields the operator strips left out, those it sets put in with its values; and the names of
those the request had given, for the answer to name. The body is changed where it is: it is
the one the relay wrote for this request alone, and goes upstream as the filters leave it.
"""

from __future__ import annotations

import copy
from typing import Collection

from proxy.config.catalog import Filters


def apply(filters: Filters, body: dict, filled: Collection[str] = ()) -> tuple:
    """Apply ``filters`` to ``body``, in place (a value set is a copy, the body's own).
    Returns ``(stripped, replaced)``: the names of the fields the request had given that
    are stripped, and that go with the operator's values instead (``filled``: fields of the
    body the proxy wrote though the request gave none, such as a limit the API requires)."""
    stripped = tuple(name for name in filters.strip if name in body and name not in filled)
    for name in filters.strip:
        body.pop(name, None)
    replaced = tuple(name for name, _ in filters.set if name in body and name not in filled)
    body.update((name, copy.deepcopy(value)) for name, value in filters.set)
    return stripped, replaced
