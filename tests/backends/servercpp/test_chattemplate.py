"""Chat → prompt rendering by a chat template: the historic flag template, byte for byte, and
Jinja templates in their sandbox, with the fields, helpers and call ids they are given."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.chattemplate import HistoricTemplate, JinjaTemplate, RenderedPrompt
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
