"""Which way a chat goes: request × what the server's chat layer honours → route."""

from __future__ import annotations

from dataclasses import replace

import pytest

from proxy.backends.servercpp.kinds import CHAT_LAYER, OWN_WAY, ChatLayer, route
from proxy.core.types import GenerationRequest, Message, ResponseFormat, ToolChoice

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CHAT = GenerationRequest(messages=(Message("user", "hi"),))
SCHEMA = ResponseFormat("json_schema", {"type": "object"})
GRAMMAR = 'root ::= "x"'

REQUESTS = {
    "plain chat": CHAT,
    "raw prompt": GenerationRequest(prompt="hi"),
    "tools, auto": replace(CHAT, tools=(TOOL,)),
    "tools, required": replace(CHAT, tools=(TOOL,), tool_choice=ToolChoice("required")),
    "tools, named": replace(CHAT, tools=(TOOL,), tool_choice=ToolChoice("function", "f")),
    "tools and a grammar": replace(CHAT, tools=(TOOL,), grammar=GRAMMAR),
    "a grammar": replace(CHAT, grammar=GRAMMAR),
    "a schema": replace(CHAT, response_format=SCHEMA),
    "json object": replace(CHAT, response_format=ResponseFormat("json_object")),
}
LAYERS = {
    "no chat layer": None,
    "tool syntax, schemas": ChatLayer(tools=True, schemas=True),
    "tool syntax, schemas not asked": ChatLayer(tools=True),
    "no tool syntax, schemas": ChatLayer(tools=False, schemas=True),
    "no tool syntax, no schemas": ChatLayer(tools=False, schemas=False),
}
C, W = CHAT_LAYER, OWN_WAY  # the chat layer's route, or the proxy's own way
# one row a request, one column a layer, in the order of LAYERS
TABLE = {
    "plain chat": (W, C, C, C, C),
    "raw prompt": (W, W, W, W, W),
    "tools, auto": (W, C, C, W, W),
    "tools, required": (W, C, C, W, W),
    "tools, named": (W, C, C, W, W),
    "tools and a grammar": (W, W, W, W, W),
    "a grammar": (W, C, C, C, C),
    "a schema": (W, C, W, C, W),
    "json object": (W, C, W, C, W),
}


@pytest.mark.parametrize("request_name", TABLE)
@pytest.mark.parametrize("layer_name", LAYERS)
def test_route(request_name, layer_name):
    expected = TABLE[request_name][list(LAYERS).index(layer_name)]
    assert route(REQUESTS[request_name], LAYERS[layer_name]) == expected


def test_a_layer_told_it_takes_schemas_keeps_the_rest():
    layer = ChatLayer(tools=True, short_ids=True)
    assert layer.with_schemas(False) == ChatLayer(tools=True, short_ids=True, schemas=False)
