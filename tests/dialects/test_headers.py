"""Client text a dialect names back in a response header (options it ignored, tools it left
out) goes out as visible ASCII, whatever the client wrote; the models that made an answer
are named in order."""

from __future__ import annotations

import pytest

from proxy.api.serve import LEFT_OUT_TOOLS_HEADER, left_out_headers, makers, tell
from proxy.core.types import Completion, Served, Spent, Usage
from proxy.dialects import anthropic, responses
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
