"""A model's card from what its server and its file say."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.card import card_of, file_card
from proxy.backends.servercpp.chattemplate import HistoricTemplate, JinjaTemplate

CAPS = {"supports_tools": True}
PROPS = {
    "chat_template": "{{ messages }}",
    "chat_template_caps": CAPS,
    "modalities": {"vision": False},
    "model_ftype": "Q4_K_M",
    "default_generation_settings": {"n_ctx": 4096},
}
LISTED = {"n_ctx": 8192, "n_params": 135_000_000, "size": 98_000_000, "ftype": "Q8_0"}
HISTORIC = HistoricTemplate("", "\nUSER: ", "\nASSISTANT: ", "\nRULE: ", "</s>")


TEMPLATE = JinjaTemplate("{{ messages }}", name="t")


@pytest.mark.parametrize(
    ("props", "template", "layer", "capabilities"),
    [
        pytest.param(PROPS, TEMPLATE, True, ("completion", "tools"), id="chat-layer-with-tools"),
        pytest.param(
            {**PROPS, "chat_template_caps": {"supports_tools": False}},
            TEMPLATE,
            True,
            ("completion", "tools"),
            id="chat-layer-without-tools-the-proxy-calls-them",
        ),
        pytest.param(
            {**PROPS, "chat_template": "{% if enable_thinking %}<think>{% endif %}"},
            TEMPLATE,
            True,
            ("completion", "tools", "thinking"),
            id="chat-layer-thinking",
        ),
        pytest.param(
            {**PROPS, "modalities": {"vision": True}},
            TEMPLATE,
            True,
            ("completion", "tools", "vision"),
            id="a-projector",
        ),
        pytest.param(
            {**PROPS, "modalities": {"vision": False, "audio": True}},
            TEMPLATE,
            True,
            ("completion", "tools", "audio"),
            id="an-audio-projector",
        ),
        pytest.param(
            {}, HISTORIC, False, ("completion", "tools"), id="the-proxy-renders-and-reads-calls"
        ),
        pytest.param(
            {},
            JinjaTemplate("<think>{{ messages }}", name="t"),
            False,
            ("completion", "tools", "thinking"),
            id="a-thinking-template-the-proxy-renders",
        ),
    ],
)
def test_capabilities(props, template, layer, capabilities):
    assert card_of("m", props, {}, template, chat_layer=layer).capabilities == capabilities


def test_a_reranker_only_reranks():
    assert card_of("m", PROPS, {}, TEMPLATE, chat_layer=True, reranks=True).capabilities == (
        "rerank",
    )


def test_a_file_card_says_what_its_servers_flags_let_it_do(tmp_path):
    from tests.e2e.tinymodel import write_tiny_llama_gguf

    path = str(write_tiny_llama_gguf(tmp_path / "tiny.gguf"))
    assert file_card(path).capabilities == ("completion",)
    assert file_card(path, ("completion", "vision")).capabilities == ("completion", "vision")


def test_the_context_a_conversation_gets_and_the_servers_facts():
    card = card_of("m", PROPS, LISTED, TEMPLATE, chat_layer=True)
    assert (card.context_length, card.parameters, card.size, card.quantization) == (
        4096,
        135_000_000,
        98_000_000,
        "Q4_K_M",
    )
    assert card.template == "{{ messages }}" and len(card.digest) == 64
    assert card_of("m", {}, LISTED, HISTORIC).context_length == 8192
    assert card_of("m", {}, {}, HISTORIC).context_length is None
    assert card_of("m", {}, {}, HISTORIC).digest != card_of("n", {}, {}, HISTORIC).digest


def test_a_file_the_proxy_cannot_read_as_gguf_has_no_card(tmp_path):
    path = tmp_path / "not.gguf"
    path.write_bytes(b"not a model")
    assert file_card(str(path)) is None
