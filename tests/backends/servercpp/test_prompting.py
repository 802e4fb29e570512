"""The chat template chosen at start-up: the historic flag template, presets, Jinja files and
``auto``, and the start-up error a name or file that is none of them gets."""

from __future__ import annotations

import logging

import pytest

from proxy.backends.servercpp.chattemplate import HistoricTemplate, RenderedPrompt
from proxy.backends.servercpp.prompting import PRESET_TOOL_FORMATS, PRESETS, build_template
from proxy.core.types import Message, ToolCall

from .test_chattemplate import CONVERSATION, HISTORIC_DEFAULTS


@pytest.fixture
def historic() -> HistoricTemplate:
    return HistoricTemplate(**HISTORIC_DEFAULTS)


PRESET_RENDERINGS = [
    (
        "chatml",
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n",
        ("<|im_end|>",),
    ),
    (
        "llama2",
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]",
        ("</s>",),
    ),
    (
        "llama3",
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|eot_id|>",),
    ),
    ("mistral", "[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] Bye [/INST]", ("</s>",)),
    ("vicuna", "Be brief. USER: Hi ASSISTANT: Hello!</s>USER: Bye ASSISTANT:", ("</s>",)),
    (
        "alpaca",
        "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n"
        "### Instruction:\nBye\n\n### Response:\n",
        ("</s>", "### Instruction:"),
    ),
    (
        "zephyr",
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
        "<|user|>\nBye</s>\n<|assistant|>\n",
        ("</s>",),
    ),
    (
        "chatglm3",
        "[gMASK]sop<|system|>\n Be brief.<|user|>\n Hi<|assistant|>\n Hello!"
        "<|user|>\n Bye<|assistant|>",
        ("<|user|>", "<|observation|>"),
    ),
]


def test_preset_table_covers_every_preset():
    assert sorted(name for name, _, _ in PRESET_RENDERINGS) == sorted(PRESETS)


@pytest.mark.parametrize(
    ("name", "expected_text", "expected_stop"),
    PRESET_RENDERINGS,
    ids=[row[0] for row in PRESET_RENDERINGS],
)
def test_preset_renders_conversation(historic, name, expected_text, expected_stop):
    template = build_template(name, historic=historic)
    assert template.name == name
    rendered = template.render(CONVERSATION)
    assert (rendered.text, rendered.stop) == (expected_text, expected_stop)
    assert rendered.tool_format == PRESET_TOOL_FORMATS.get(name, "plain")


@pytest.mark.parametrize(
    ("name", "default_system"),
    [
        (
            "vicuna",
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's "
            "questions. USER: Hi ASSISTANT:",
        ),
        (
            "alpaca",
            "Below is an instruction that describes a task. Write a response that "
            "appropriately completes the request.\n\n### Instruction:\nHi\n\n### Response:\n",
        ),
    ],
    ids=["vicuna", "alpaca"],
)
def test_preset_default_system_line(historic, name, default_system):
    rendered = build_template(name, historic=historic).render([Message("user", "Hi")])
    assert rendered.text == default_system


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("llama2", "[INST] Tool result: 42 [/INST]"),
        ("vicuna", "USER: Tool result: 42"),
        ("mistral", '[INST] [TOOL_RESULTS]{"content": "42"}[/TOOL_RESULTS] [/INST]'),
        ("chatml", "<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>"),
        ("llama3", "<|start_header_id|>ipython<|end_header_id|>\n\n42<|eot_id|>"),
    ],
    ids=lambda value: value if value in PRESETS else None,
)
def test_presets_give_tool_results_back_in_their_models_words(historic, name, written):
    messages = [Message("user", "q"), Message("tool", "42", tool_call_id="call_1")]
    assert written in build_template(name, historic=historic).render(messages).text


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("chatml", '<tool_call>{"name":"add","arguments":{"a":1}}</tool_call><|im_end|>'),
        ("llama3", '{"name":"add","parameters":{"a":1}}<|eot_id|>'),
        ("mistral", '[TOOL_CALLS][{"name":"add","arguments":{"a":1}}]</s>'),
        ("chatglm3", "<|assistant|>\n add\n```python\ntool_call(a=1)\n```"),
    ],
    ids=lambda value: value if value in PRESETS else None,
)
def test_presets_describe_tools_and_write_earlier_calls(historic, name, call):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    messages = [
        Message("user", "q"),
        Message("assistant", "", tool_calls=(ToolCall("c1", "add", '{"a": 1}'),)),
        Message("tool", "2", tool_call_id="c1"),
        Message("user", "again"),
    ]
    text = build_template(name, historic=historic).render(messages, tools).text
    assert call in text
    assert '"name": "add"' in text or '"name":"add"' in text.split(call)[0]


def test_chatglm3_tool_result_is_an_observation(historic):
    rendered = build_template("chatglm3", historic=historic).render(
        [Message("user", "q"), Message("tool", "42", tool_call_id="call_1")]
    )
    assert rendered.text == "[gMASK]sop<|user|>\n q<|observation|>\n 42<|assistant|>"


def test_historic_spec_returns_the_flag_template(historic):
    assert build_template("historic", historic=historic) is historic


SERVER_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


SMOLLM2_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize(
    "source, bos, adds_bos, text",
    [
        # the server adds BOS itself: the template's own would be a second one
        (SERVER_TEMPLATE, "<s>", True, "<|user|>hi</s><|assistant|>"),
        # the server adds none: the prompt keeps the BOS its template writes
        (SERVER_TEMPLATE, "<s>", False, "<s><|user|>hi</s><|assistant|>"),
        # a template whose first token merely is the BOS text (SmolLM2's <|im_start|>), added by
        # no tokenizer: kept, or the prompt would lose its first marker
        (
            SMOLLM2_LIKE,
            "<|im_start|>",
            False,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        ),
        (SMOLLM2_LIKE, "<|im_start|>", True, "user\nhi<|im_end|>\n<|im_start|>assistant\n"),
        (SMOLLM2_LIKE, "", True, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ],
    ids=["added-stripped", "not-added-kept", "smollm2-kept", "smollm2-added", "no-bos"],
)
def test_auto_template_begins_with_bos_as_the_model_adds_it(historic, source, bos, adds_bos, text):
    template = build_template(
        "auto",
        historic=historic,
        server_template=source,
        bos_token=bos,
        eos_token="</s>",
        adds_bos=adds_bos,
    )
    assert template.render([Message("user", "hi")]) == RenderedPrompt(text=text, stop=())


@pytest.mark.parametrize("server_template", [None, ""], ids=["none", "empty"])
def test_auto_without_server_template_falls_back_to_historic(historic, caplog, server_template):
    with caplog.at_level(logging.WARNING, logger="proxy.backends.servercpp.prompting"):
        template = build_template("auto", historic=historic, server_template=server_template)
    assert template is historic
    assert len(caplog.records) == 1


def test_jinja_file_path(tmp_path, historic):
    path = tmp_path / "mine.jinja"
    path.write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] ",
        encoding="utf-8",
    )
    template = build_template(str(path), historic=historic)
    rendered = template.render([Message("user", "héllo")])
    assert rendered == RenderedPrompt(text="[user] héllo\n[assistant] ", stop=())
    assert template.name == str(path)


@pytest.mark.parametrize("spec", ["chatml2", "no/such/file.jinja", ""], ids=str)
def test_unknown_name_or_missing_file_is_a_start_up_error(historic, spec):
    with pytest.raises(ValueError) as excinfo:
        build_template(spec, historic=historic)
    for name in PRESETS:
        assert name in str(excinfo.value)


def test_unreadable_file_is_a_start_up_error(tmp_path, historic):
    path = tmp_path / "latin1.jinja"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(ValueError, match="latin1.jinja"):
        build_template(str(path), historic=historic)


def test_syntax_error_names_the_file_and_line(tmp_path, historic):
    path = tmp_path / "broken.jinja"
    path.write_text("line one\n{% for m in messages %}\n{{ m.content }\n", encoding="utf-8")
    with pytest.raises(ValueError) as excinfo:
        build_template(str(path), historic=historic)
    assert "broken.jinja" in str(excinfo.value)
    assert "line 3" in str(excinfo.value)


def test_syntax_error_in_server_template_is_a_start_up_error(historic):
    with pytest.raises(ValueError, match="server"):
        build_template("auto", historic=historic, server_template="{% if %}")
