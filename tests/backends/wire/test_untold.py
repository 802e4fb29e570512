"""The usage of an answer whose engine told none: every part of what it read and wrote
counted, never below what its bytes allow."""

from __future__ import annotations

import json
import math

import pytest

from proxy.backends.wire import untold
from proxy.backends.wire.untold import (
    IMAGE_TOKENS,
    SOUND_TOKENS,
    TEMPLATE_CALL,
    TEMPLATE_MESSAGE,
    TEMPLATE_REQUEST,
    TEMPLATE_RESULT,
    TEMPLATE_TOOLS,
)
from proxy.core import textsize
from proxy.core.answers import ESTIMATED, TOLD, UNTOLD, Chunk, Completion, ToolCallPiece, Usage
from proxy.core.types import (
    GenerationRequest,
    Image,
    Message,
    ResponseFormat,
    Sound,
    SourceChunk,
    ToolCall,
    Verbatim,
)

HI = (Message("user", "Hi!!"),)  # 4 bytes: a token
AROUND = TEMPLATE_REQUEST + TEMPLATE_MESSAGE  # what a template adds to a chat of one message
CALL = ToolCall("c1", "read", '{"path": "a.txt"}')  # a token of name, 17 bytes of JSON: 5
TOOL = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


def chat(*messages: Message, **fields) -> GenerationRequest:
    return GenerationRequest(messages=(*HI, *messages), **fields)


def as_json(value) -> int:
    """The tokens of ``value`` as JSON, at three and a half bytes a token."""
    return math.ceil(len(json.dumps(value)) / 3.5)


@pytest.mark.parametrize(
    ("request_", "tokens"),
    [
        (GenerationRequest(messages=HI), 1 + AROUND),
        (chat(Message("system", "Be brief; be kind!!!")), 1 + 5 + AROUND + TEMPLATE_MESSAGE),
        (chat(Message("user", "héllo")), 1 + 2 + AROUND + TEMPLATE_MESSAGE),  # 6 bytes
        (chat(Message("user", "see", images=(Image("image_url"), Image("image_url")))),
         1 + 1 + 2 * IMAGE_TOKENS + AROUND + TEMPLATE_MESSAGE),
        (chat(Message("user", "hear", sounds=(Sound("input_audio.data", 0, "wav", "UklGRg=="),))),
         1 + 1 + SOUND_TOKENS + AROUND + TEMPLATE_MESSAGE),
        (chat(Message("assistant", "", reasoning="x" * 400)), 1 + 100 + AROUND + TEMPLATE_MESSAGE),
        (chat(Message("assistant", "", tool_calls=(CALL, CALL))),
         1 + 2 + 10 + AROUND + TEMPLATE_MESSAGE + 2 * TEMPLATE_CALL),
        (chat(Message("tool", '{"lines": 123}', name="read", tool_call_id="c1")),
         1 + 4 + 1 + AROUND + TEMPLATE_RESULT),  # its text, 14 bytes, and its name
        (chat(tools=(TOOL,) * 2), 1 + as_json([TOOL, TOOL]) + TEMPLATE_TOOLS + AROUND),
        (chat(response_format=ResponseFormat("json_schema", SCHEMA)), 1 + as_json(SCHEMA) + AROUND),
        (chat(response_format=ResponseFormat("json_object")), 1 + AROUND),
        (GenerationRequest(prompt="Once upon a time"), 4),  # a raw prompt: no template
        (GenerationRequest(prompt="def f(", suffix="):", cursor="x",
                           nearby=(SourceChunk("import os"),)), 5),  # 18 bytes
        (GenerationRequest(verbatim=Verbatim("responses", {"input": "hi"})),
         as_json({"input": "hi"}) + TEMPLATE_REQUEST),  # a body the proxy did not translate
    ],
    ids=["text", "system", "utf-8", "images", "sounds", "thoughts sent back", "calls",
         "tool result", "tools", "schema", "json object", "raw prompt", "infill", "untranslated"],
)  # fmt: skip
def test_a_prompt_is_estimated_from_every_part_the_engine_reads(request_, tokens):
    estimate = untold.prompt_estimate(request_)
    assert estimate == tokens
    assert estimate >= textsize.fewest(textsize.prompt_size(request_).bytes)


@pytest.mark.parametrize(
    ("completion", "tokens"),
    [
        (Completion("I'm glad you're here", "stop", Usage()), 5),
        (Completion("", "stop", Usage(), reasoning="Let me think it through."), 6),
        (Completion("", "tool_calls", Usage(), tool_calls=(CALL, CALL)), 2 + 10),
        (Completion("Done.", "stop", Usage(), reasoning="Easy."), 3),
    ],
    ids=["text", "thoughts", "calls", "text and thoughts"],
)
def test_a_whole_answer_is_estimated_from_its_text_thoughts_and_calls(completion, tokens):
    assert untold.answered(completion) == tokens


NAMED = dict(id="call_1", name="get_weather")  # a call's label, as an engine sends it


@pytest.mark.parametrize(
    ("chunks", "tokens"),
    [
        ([Chunk("I'm"), Chunk(" glad"), Chunk(" here")], 3),
        ([Chunk(reasoning="Hmm"), Chunk(reasoning=","), Chunk("Yes")], 3),
        ([Chunk("a", reasoning="b")], 2),  # a piece of each
        # llama-cpp-python's server: the label on every piece, the last one closing
        ([Chunk(tool_calls=(ToolCallPiece(0, piece, **NAMED),)) for piece in ('{"', "city", '":',
          ' "', "Paris", '"}', "")], 6),
        # llama-server's: the name alone, then the arguments; two calls in one piece
        ([Chunk(tool_calls=(ToolCallPiece(0, "", **NAMED),)),
          Chunk(tool_calls=(ToolCallPiece(0, '{"city"'), ToolCallPiece(0, ': "Paris"}')))], 3),
        ([Chunk(tool_calls=(ToolCallPiece(0, "", **NAMED), ToolCallPiece(1, "", **NAMED)))], 2),
        ([Chunk("x" * 320)], 10),  # a piece of many tokens: no fewer than its bytes allow
        ([Chunk(tool_calls=(ToolCallPiece(0, "x" * 309, **NAMED),))], 10),  # its name's too
        ([], 0),
    ],
    ids=["text", "thoughts", "both", "llama-cpp-python's call", "llama-server's call",
         "two calls", "one long piece", "one long call", "nothing"],
)  # fmt: skip
def test_a_stream_is_estimated_a_token_a_piece_never_below_its_bytes(chunks, tokens):
    made = untold.PieceCount()
    for chunk in chunks:
        made.add(chunk)
    assert made.tokens == tokens


@pytest.mark.parametrize(("prompt", "expected"), [(32, 32), (None, 1 + AROUND)])
def test_the_engines_count_of_the_prompt_stands_else_it_is_estimated(prompt, expected):
    usage = untold.usage(GenerationRequest(messages=HI), prompt, 8)
    assert usage == Usage(expected, 8) and usage.how == ESTIMATED


def test_the_probe_is_the_request_whole_and_one_token_long():
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True},
            "max_completion_tokens": 90, "temperature": 0}  # fmt: skip
    assert untold.probe(body) == {
        "model": "m", "messages": [], "stream": False, "max_tokens": 1, "temperature": 0
    }  # fmt: skip


@pytest.mark.parametrize(
    ("hows", "sum_how"),
    [((TOLD, TOLD), TOLD), ((TOLD, ESTIMATED), ESTIMATED), ((ESTIMATED, UNTOLD), UNTOLD)],
)
def test_a_sum_of_usages_is_as_sure_as_its_least(hows, sum_how):
    assert (Usage(1, 1, how=hows[0]) + Usage(2, 2, how=hows[1])).how == sum_how
