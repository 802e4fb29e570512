"""Chat → prompt rendering: the historic flag template, presets, Jinja files and ``auto``."""

from __future__ import annotations

import logging

import pytest

from proxy.backends.servercpp.prompting import (
    PRESET_TOOL_FORMATS,
    PRESETS,
    HistoricTemplate,
    JinjaTemplate,
    RenderedPrompt,
    build_template,
)
from proxy.backends.structured.callids import template_id
from proxy.core.errors import InvalidRequestError
from proxy.core.types import Message, ToolCall

# The historic shim's flag defaults, with their \n escapes already turned into newlines.
HISTORIC_DEFAULTS = dict(
    chat_prompt="A chat between a curious user and an artificial intelligence assistant. "
    "The assistant follows the given rules no matter what.\n",
    user_name="\nUSER: ",
    ai_name="\nASSISTANT: ",
    system_name="\nASSISTANT's RULE: ",
    stop_word="</s>",
)

CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello!"),
    Message("user", "Bye"),
)


@pytest.fixture
def historic() -> HistoricTemplate:
    return HistoricTemplate(**HISTORIC_DEFAULTS)


def test_historic_single_user_message_is_byte_exact(historic):
    rendered = historic.render([Message("user", "hi")])
    assert rendered == RenderedPrompt(
        text="A chat between a curious user and an artificial intelligence assistant. The "
        "assistant follows the given rules no matter what.\n\nUSER: hi\nASSISTANT:",
        stop=("</s>",),
    )


def test_historic_multi_turn_appends_stop_word_after_assistant(historic):
    rendered = historic.render(CONVERSATION)
    assert rendered.text == (
        HISTORIC_DEFAULTS["chat_prompt"]
        + "\nASSISTANT's RULE: Be brief."
        + "\nUSER: Hi"
        + "\nASSISTANT: Hello!</s>"
        + "\nUSER: Bye"
        + "\nASSISTANT:"
    )
    assert rendered.stop == ("</s>",)


def test_historic_developer_renders_like_system(historic):
    as_system = historic.render([Message("system", "Rule."), Message("user", "q")])
    as_developer = historic.render([Message("developer", "Rule."), Message("user", "q")])
    assert as_developer == as_system


def test_historic_custom_flags():
    template = HistoricTemplate(
        chat_prompt="",
        user_name="### Human: ",
        ai_name="### Bot:\t ",
        system_name="### System: ",
        stop_word="###",
    )
    rendered = template.render(
        [
            Message("system", "S"),
            Message("user", "U"),
            Message("assistant", "A"),
            Message("user", "V"),
        ]
    )
    assert rendered == RenderedPrompt(
        text="### System: S### Human: U### Bot:\t A###### Human: V### Bot:", stop=("###",)
    )


def test_historic_empty_stop_word_means_no_stop():
    template = HistoricTemplate(**{**HISTORIC_DEFAULTS, "stop_word": ""})
    rendered = template.render(
        [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    )
    assert rendered.stop == ()
    assert rendered.text.endswith("\nUSER: a\nASSISTANT: b\nUSER: c\nASSISTANT:")


def test_historic_tool_turns_are_written_in_plain_words(historic):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    call = ToolCall("call_1", "add", '{"a": 1}')
    messages = [
        Message("user", "q"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "2", tool_call_id="call_1"),
    ]
    text = historic.render(messages, tools).text
    assert "\nASSISTANT's RULE: You may call the functions below." in text
    assert '"name":"add"' in text
    assert '\nASSISTANT: <tool_call>{"name":"add","arguments":{"a":1}}</tool_call></s>' in text
    assert text.endswith("\nUSER: Tool result: 2\nASSISTANT:")


@pytest.mark.parametrize("role", ["narrator"], ids=str)
def test_historic_unknown_role_is_a_request_error(historic, role):
    messages = [Message("user", "q"), Message(role, "x", tool_call_id="call_1")]
    with pytest.raises(InvalidRequestError) as excinfo:
        historic.render(messages)
    assert excinfo.value.param == "messages[1].role"
    assert repr(role) in excinfo.value.message
    assert "--chat-template" in excinfo.value.message


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


def test_raise_exception_becomes_a_request_error():
    template = JinjaTemplate(
        "{% for m in messages %}{% if (m.role == 'user') != loop.index0 is even %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}"
        "{% endif %}{{ m.content }}{% endfor %}",
        name="strict",
    )
    with pytest.raises(InvalidRequestError) as excinfo:
        template.render([Message("user", "a"), Message("user", "b")])
    assert excinfo.value.param == "messages"
    assert "roles must alternate" in excinfo.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append({'role': 'user'}) }}",
        "{{ raise_exception.__globals__.os }}",
    ],
    ids=["subclasses", "mutate-messages", "function-globals"],
)
def test_sandbox_escape_is_a_request_error(source):
    template = JinjaTemplate(source, name="evil")
    with pytest.raises(InvalidRequestError) as excinfo:
        template.render([Message("user", "hi")])
    assert excinfo.value.param == "messages"
    assert "subprocess" not in excinfo.value.message
    assert "Popen" not in excinfo.value.message


def test_template_type_error_is_a_request_error():
    template = JinjaTemplate("{{ messages[0].content + 1 }}", name="sloppy")
    with pytest.raises(InvalidRequestError):
        template.render([Message("user", "hi")])


def test_leading_bos_is_stripped_once():
    template = JinjaTemplate(
        "{{ bos_token }}{{ bos_token }}{{ messages[0].content }}", name="double", bos_token="<s>"
    )
    assert template.render([Message("user", "x")]).text == "<s>x"


def test_jinja_receives_optional_fields_and_helpers():
    template = JinjaTemplate(
        "{% for m in messages %}{{ m.role }}:{{ m.name | default('-') }}:"
        "{{ m.tool_call_id | default('-') }}:{{ m.reasoning_content | default('-') }}:"
        "{% for c in m.tool_calls | default([]) %}{{ c.id }}={{ c.function.name }}"
        "{% for k, v in c.function.arguments.items() %}({{ k }}={{ v }}){% endfor %}"
        "{% endfor %};{% endfor %}{{ strftime_now('%Y') | length }}{{ {'a': '<b>'} | tojson }}"
        "{{ enable_thinking }}",
        name="fields",
    )
    messages = [
        Message("user", "q", name="ann"),
        Message(
            "assistant", "", tool_calls=(ToolCall("call_1", "add", '{"a": 1}'),), reasoning="sum it"
        ),
        Message("tool", "2", tool_call_id="call_1"),
    ]
    assert template.render(messages, variables={"enable_thinking": False}).text == (
        'user:ann:-:-:;assistant:-:-:sum it:call_1=add(a=1);tool:-:call_1:-:;4{"a": "<b>"}False'
    )


MISTRAL_LIKE = (
    "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "{% if c.id | length != 9 %}{{ raise_exception('Tool call IDs should be alphanumeric "
    "strings with length 9!') }}{% endif %}[CALL]{{ c.id }}{% endfor %}"
    "{% elif m.role == 'tool' %}[RESULT]{{ m.tool_call_id }}:{{ m.content }}"
    "{% else %}[INST]{{ m.content }}{% endif %}{% endfor %}{% if tools %}{% endif %}"
)


@pytest.mark.parametrize(
    "source, shortened",
    [(MISTRAL_LIKE, True), (MISTRAL_LIKE.replace("!= 9", "< 1"), False)],
    ids=["refuses-long-ids", "takes-any-id"],
)
def test_call_ids_are_shortened_only_for_templates_that_refuse_others(source, shortened):
    template = JinjaTemplate(source, name="mistral-like")
    messages = [
        Message("user", "q"),
        Message("assistant", "", tool_calls=(ToolCall("toolu_01XYZ", "f", "{}"),)),
        Message("tool", "ok", tool_call_id="toolu_01XYZ"),
    ]
    call_id = template_id("toolu_01XYZ") if shortened else "toolu_01XYZ"
    assert template.render(messages).text == f"[INST]q[CALL]{call_id}[RESULT]{call_id}:ok"


@pytest.mark.parametrize(
    "call_id",
    [
        "call_1",
        "toolu_01A09q90qw90lq917835lq9",
        "1CFdCbnaWXFWB0WKA7QZLfX781QIGRZz",
        "fc_x",
        "",
        "ümlaut",
    ],
)
def test_every_call_id_reaches_templates_as_nine_letters_and_digits(call_id):
    short = template_id(call_id)
    assert len(short) == 9 and short.isascii() and short.isalnum()
    assert template_id(call_id) == short  # the same every time: its result still matches
    assert template_id(short) == short  # Mistral's own ids stay as the model wrote them


def test_arguments_that_are_no_object_reach_templates_as_text():
    template = JinjaTemplate(
        "{% for m in messages %}{% for c in m.tool_calls | default([]) %}"
        "{{ c.function.arguments is string }}{% endfor %}{% endfor %}",
        name="args",
    )
    calls = (
        ToolCall("a", "f", "[1, 2]"),
        ToolCall("b", "f", "not json"),
        ToolCall("c", "f", '{"x": 1}'),
    )
    assert template.render([Message("assistant", "", tool_calls=calls)]).text == "TrueTrueFalse"
