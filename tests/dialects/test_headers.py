"""Client text a dialect names back in a response header (options it ignored, tools it left
out) goes out as visible ASCII, whatever the client wrote; the models that made an answer
are named in order."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from proxy.api.serve import LEFT_OUT_TOOLS_HEADER, left_out_headers, makers, tell
from proxy.core.answers import Completion, Served, Spent, Usage
from proxy.dialects import anthropic, responses
from proxy.dialects.dialect import MOST, named
from proxy.dialects.ollama import answer as ollama
from proxy.dialects.ollama import chat as ollama_chat

HI = [{"role": "user", "content": "hi"}]
HOSTILE = ["line\r\nX-Forged: yes", "nul\x00", "名前", "ü€"]
ENCODED = "line%0D%0AX-Forged:%20yes, nul%00, %E5%90%8D%E5%89%8D, %C3%BC%E2%82%AC"


@pytest.mark.parametrize(
    ("dialect", "parsed", "header"),
    [
        pytest.param(
            anthropic,
            lambda: anthropic.parse(
                {
                    "max_tokens": 8,
                    "messages": HI,
                    "tools": [{"type": "bash_20250124", "name": name} for name in HOSTILE],
                }
            ),
            LEFT_OUT_TOOLS_HEADER,
            id="messages-client-tools",
        ),
        pytest.param(
            responses,
            lambda: responses.parse({"input": "hi", "tools": [{"type": kind} for kind in HOSTILE]}),
            LEFT_OUT_TOOLS_HEADER,
            id="responses-tool-types",
        ),
        pytest.param(
            ollama,
            lambda: ollama_chat.parse(
                {"model": "m", "messages": HI, "options": {name: 1 for name in HOSTILE}}
            ),
            ollama.IGNORED_HEADER,
            id="ollama-options",
        ),
    ],
)
def test_client_text_in_a_header_is_percent_encoded(dialect, parsed, header):
    value = left_out_headers(dialect, parsed())[header]
    assert sorted(value.split(", ")) == sorted(ENCODED.split(", "))


SMALL, LARGE = Served("small", True), Served("large", True)


@pytest.mark.parametrize(
    "completions, named",
    [
        ([Completion("a", "stop", Usage(), served=SMALL)], [SMALL]),
        (  # a tool loop whose turns two models made
            [
                Completion(
                    "a",
                    "stop",
                    Usage(3, 4),
                    served=LARGE,
                    spent=(Spent(Usage(1, 1), SMALL), Spent(Usage(2, 3), LARGE)),
                )
            ],
            [SMALL, LARGE],
        ),
        (  # two choices
            [Completion("a", "stop", Usage(), served=LARGE), Completion("b", "stop", Usage())],
            [LARGE],
        ),
    ],
)
def test_the_answer_names_every_model_that_made_a_part_of_it_in_order(completions, named):
    assert makers(completions) == named
    headers = {}
    tell(headers, makers(completions))
    assert headers["x-oai-proxy-served-model"] == ", ".join(each.model for each in named)


@pytest.mark.parametrize(
    ("items", "value"),
    [
        (["num_ctx", "num_gpu"], "num_ctx, num_gpu"),
        (["web_search"], "web_search"),
        (["a\r\nX-Forged: yes"], "a%0D%0AX-Forged:%20yes"),
        (["nul\x00"], "nul%00"),
        (["名前"], "%E5%90%8D%E5%89%8D"),
        (["ü€"], "%C3%BC%E2%82%AC"),
        (["a,b", "c d", "100%"], "a%2Cb, c%20d, 100%25"),  # the separators and the escape
        (["tab\there", "del\x7f", "nel\x85"], "tab%09here, del%7F, nel%C2%85"),
        (["lone \ud800"], "lone%20%ED%A0%80"),
        (['{"json": [1]}'], '{"json":%20[1]}'),
        ([""], ""),
        (["", "a", ""], ", a, "),
    ],
)
def test_items_are_percent_encoded(items, value):
    assert named(items) == value


@pytest.mark.parametrize("item", ["line\r\nnext", "é", "\x00\x1b[31m", "a, b", "%41"])
def test_an_item_reads_back_as_it_was_written(item):
    assert unquote(named([item])) == item


def test_only_visible_ascii_and_the_separator_go_out():
    value = named(chr(code) for code in range(0x100))
    assert all(0x20 <= ord(char) < 0x7F for char in value)
    assert value.count(", ") == 0x100 - 1


def test_items_past_the_length_are_counted_not_named():
    value = named(f"tool_{i:04}" for i in range(1000))
    assert len(value) <= MOST + len(", (999 more)")
    assert value.startswith("tool_0000, tool_0001, ")
    kept = value.split(", ")[:-1]
    assert value.endswith(f", ({1000 - len(kept)} more)")


def test_one_item_past_the_length_is_counted():
    assert named(["x" * (MOST + 1)]) == "(1 more)"
