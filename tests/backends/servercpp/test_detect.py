"""Whether a server has a chat layer, and what it honours, as its ``/apply-template`` tells:
a table of what it renders (the probe chat with its tools, the probe with short ids, a plain
chat) and the layer found."""

import pytest

from proxy.backends.servercpp.detect import CALL_WORDS, PLAIN_CHAT, Detector
from proxy.backends.servercpp.kinds import ChatLayer
from proxy.backends.structured import callids

TOOLS = f"<call>{CALL_WORDS}</call>"  # a template that writes earlier calls back


class Rendering(Detector):
    """A detector whose server renders as ``renders`` says: ``"long"`` (the probe with a
    long call id), ``"short"`` (with a short one) and ``"plain"`` (a chat without tools),
    each to a prompt or ``None`` (refused)."""

    def __init__(self, **renders) -> None:
        self.renders = renders

    def _render(self, chat: dict):
        if chat == PLAIN_CHAT:
            return self.renders.get("plain")
        call_id = chat["messages"][1]["tool_calls"][0]["id"]
        return self.renders.get("long" if call_id == callids.LONG_ID else "short")


@pytest.mark.parametrize(
    "renders, layer",
    [
        ({"long": TOOLS, "short": TOOLS, "plain": "x"}, ChatLayer(tools=True)),
        ({"long": "no calls", "short": "no calls", "plain": "x"}, ChatLayer(tools=False)),
        ({"long": None, "short": TOOLS, "plain": "x"}, ChatLayer(tools=True, short_ids=True)),
        ({"long": None, "short": None, "plain": "x"}, ChatLayer(tools=False)),
        ({"long": None, "short": None, "plain": None}, None),
    ],
    ids=["jinja-tools", "jinja-no-tool-syntax", "mistral-ids", "no-jinja", "no-layer"],
)
def test_the_chat_layer_found(renders, layer):
    assert Rendering(**renders)._chat_layer() == layer
