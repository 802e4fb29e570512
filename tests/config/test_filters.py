"""A model's filters on the body sent upstream, and the fields they name: those the request
had given, never those the proxy wrote itself."""

from __future__ import annotations

import pytest

from proxy.config.catalog import Filters

BODY = {"model": "m", "messages": [], "stream": False, "top_k": 40, "max_tokens": 8}


@pytest.mark.parametrize(
    ("filters", "filled", "body", "named"),
    [
        pytest.param(Filters(), (), BODY, ((), ()), id="none"),
        pytest.param(
            Filters(strip=("top_k", "min_p")),
            (),
            {"model": "m", "messages": [], "stream": False, "max_tokens": 8},
            (("top_k",), ()),
            id="strip-what-was-given",
        ),
        pytest.param(
            Filters(set=(("temperature", 0.2), ("top_k", 1))),
            (),
            {**BODY, "top_k": 1, "temperature": 0.2},
            ((), ("top_k",)),
            id="set-names-what-it-replaced",
        ),
        pytest.param(
            Filters(strip=("top_k",), set=(("max_tokens", 3),)),
            ("max_tokens",),
            {"model": "m", "messages": [], "stream": False, "max_tokens": 3},
            (("top_k",), ()),
            id="a-field-the-proxy-filled-is-not-the-clients",
        ),
        pytest.param(
            Filters(strip=("max_tokens",)),
            ("max_tokens",),
            {"model": "m", "messages": [], "stream": False, "top_k": 40},
            ((), ()),
            id="stripped-but-the-proxys",
        ),
    ],
)
def test_filters_change_the_body_and_name_the_requests_fields(filters, filled, body, named):
    sent = dict(BODY)
    assert filters.apply(sent, filled) == named
    assert sent == body


def test_a_value_set_is_the_bodys_own():
    """A body is the inspector's to keep: changing it leaves the model's filters as they
    were."""
    filters = Filters(set=(("chat_template_kwargs", {"enable_thinking": False}),))
    sent: dict = {}
    filters.apply(sent)
    sent["chat_template_kwargs"]["enable_thinking"] = True
    assert filters.set == (("chat_template_kwargs", {"enable_thinking": False}),)
