"""Today's model families as tiny scripted models: each with its real chat template (from the
llama.cpp sources ``.ci/wheels.sh`` keeps), its special tokens, and its own output for each
case, as llama.cpp's ``tests/test-chat.cpp`` writes them.

A case is chosen by a word in the user's message (``ThinkCase``, ``OneCallCase``,
``TwoCallsCase``), and a tool result with ``ResultSeen`` in it makes the model answer (see
:mod:`.scriptedmodel`); a message with none of them gets the plain answer. ``expected`` is
what the family's output says, as llama.cpp's parser should read it; where llama.cpp reads
a family otherwise, ``llamacpp_reads`` says what it reads instead, and why.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field, replace
from typing import Optional

from .llama_server import wheel_cache
from .scriptedmodel import Script, Tokens

TEMPLATES_ENV_VAR = "OAI_PROXY_TEMPLATES"
ANSWER = "Hello, world!\nWhat's up?"
THOUGHT = "I'm\nthinking"
RESULT_ANSWER = "It is sunny in Paris."
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a city now",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOLS = (WEATHER, TIME)
PARIS = {"city": "Paris"}
ONE_CALL = (("get_weather", PARIS),)
TWO_CALLS = (("get_weather", PARIS), ("get_time", PARIS))
TRIGGERS = {
    "think": "ThinkCase",
    "one_call": "OneCallCase",
    "two_calls": "TwoCallsCase",
    "result": "ResultSeen",
}


@dataclass(frozen=True)
class Reading:
    """What an answer says: its text, its thoughts, its calls ``((name, arguments), …)``
    and why it ended (OpenAI's finish reasons)."""

    content: str = ""
    reasoning: str = ""
    calls: tuple = ()
    finish: str = "stop"


@dataclass(frozen=True)
class Otherwise:
    """What llama.cpp reads of a case instead of what the family wrote, and why; ``reading``
    ``None``: it refuses the answer (the parser finds no format it knows)."""

    why: str
    reading: Optional[Reading] = None


@dataclass(frozen=True)
class Family:
    """A family variant: its template file, tokens, and output for each case."""

    name: str
    template: str  # a file of llama.cpp's models/templates
    tokens: Tokens
    outputs: dict  # case -> what the model writes
    expected: dict  # case -> Reading
    llamacpp_reads: dict = field(default_factory=dict)  # case -> Otherwise
    call_id: str = "Xb3k9Qz7Lm2Pq8Rt5Vw1Yc4Nd6Fh0Jg"  # as the server or the model writes ids

    @property
    def cases(self) -> tuple:
        return tuple(self.outputs)

    def scripts(self) -> list:
        scripts = [Script(self.outputs["answer"])]
        for case, text in self.outputs.items():
            if case != "answer":
                scripts.append(
                    Script(text, trigger=TRIGGERS[case], priority=1 if case == "result" else 0)
                )
        return scripts

    def chat_template(self) -> str:
        return (templates_folder() / self.template).read_text(encoding="utf-8")


def templates_folder() -> pathlib.Path:
    """Where ``.ci/wheels.sh`` keeps llama.cpp's model templates from the sources it builds."""
    folder = pathlib.Path(
        os.environ.get(TEMPLATES_ENV_VAR) or wheel_cache() / "llama.cpp-templates"
    )
    if not folder.is_dir():
        raise FileNotFoundError(f"no llama.cpp templates at {folder}: run bash .ci/wheels.sh")
    return folder


def _family(
    name: str,
    template: str,
    tokens: Tokens,
    *,
    answer: str = ANSWER,
    think: Optional[str] = None,
    one_call: str,
    two_calls: Optional[str] = None,
    result: str = RESULT_ANSWER,
    thoughts: Optional[dict] = None,
    llamacpp_reads: Optional[dict] = None,
    **options,
) -> Family:
    """``thoughts``: what the parser reads as each case's thoughts (a family whose prompt
    opens them thinks before every answer)."""
    thoughts = {"think": THOUGHT, **(thoughts or {})}
    outputs = {"answer": answer, "one_call": one_call, "result": result}
    expected = {
        "answer": Reading(ANSWER),
        "one_call": Reading(calls=ONE_CALL, finish="tool_calls"),
        "result": Reading(RESULT_ANSWER),
    }
    if think is not None:
        outputs["think"] = think
        expected["think"] = Reading(ANSWER)
    if two_calls is not None:
        outputs["two_calls"] = two_calls
        expected["two_calls"] = Reading(calls=TWO_CALLS, finish="tool_calls")
    expected = {
        case: replace(reading, reasoning=thoughts.get(case, ""))
        for case, reading in expected.items()
    }
    return Family(name, template, tokens, outputs, expected, llamacpp_reads or {}, **options)


def _eos_kept(opened: str, why: str) -> dict:
    """What llama.cpp reads of a family whose end-of-text token's text it keeps: every
    answer ends with it (its thoughts, opened by the prompt, begin with ``opened``), and no
    call parses."""
    eos = DEEPSEEK.eos
    return {
        "answer": Otherwise(why, Reading(ANSWER + eos, opened + OPEN_THOUGHTS["answer"])),
        "think": Otherwise(why, Reading(ANSWER + eos, opened + THOUGHT)),
        "result": Otherwise(why, Reading(RESULT_ANSWER + eos)),
        "one_call": Otherwise(why),
        "two_calls": Otherwise(why),
    }


OPEN_THOUGHTS = {
    "answer": "Just answer.",
    "one_call": "I need the weather.",
    "two_calls": "I need both.",
}  # of a family whose prompt opens them


def _hermes_calls(*calls: str, newline: str = "\n") -> str:
    return newline.join(
        f'<tool_call>\n{{"name": "{call}", "arguments": {{"city": "Paris"}}}}\n</tool_call>'
        for call in calls
    )


CHATML = dict(
    control=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    user_defined=(
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
    ),
    bos="<|endoftext|>",
    eos="<|im_end|>",
    add_bos=False,
)
GLM = Tokens(
    control=(
        "[gMASK]",
        "<sop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<|endoftext|>",
    ),
    user_defined=(
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
        "<tool_response>",
        "</tool_response>",
    ),
    bos="[gMASK]",
    eos="<|endoftext|>",
    add_bos=False,
)
DEEPSEEK = Tokens(
    control=(
        "<｜User｜>",
        "<｜Assistant｜>",
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁calls▁end｜>",
        "<｜tool▁call▁begin｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁sep｜>",
        "<｜tool▁outputs▁begin｜>",
        "<｜tool▁outputs▁end｜>",
        "<｜tool▁output▁begin｜>",
        "<｜tool▁output▁end｜>",
    ),
    user_defined=("<think>", "</think>"),
    bos="<｜begin▁of▁sentence｜>",
    eos="<｜end▁of▁sentence｜>",
    add_bos=True,
)
MISTRAL = (
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
)
TEKKEN = Tokens(
    control=MISTRAL
    + (
        "[SYSTEM_PROMPT]",
        "[/SYSTEM_PROMPT]",
        "[ARGS]",
        "[CALL_ID]",
        "[TOOL_CONTENT]",
        "[THINK]",
        "[/THINK]",
    ),
    bos="<s>",
    eos="</s>",
    add_bos=True,
)
LLAMA3 = Tokens(
    control=(
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|python_tag|>",
        "<|end_of_text|>",
    ),
    bos="<|begin_of_text|>",
    eos="<|eot_id|>",
    add_bos=True,
)
GRANITE = Tokens(
    control=("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>", "<|tool_call|>"),
    user_defined=(
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
    ),
    bos="<|end_of_text|>",
    eos="<|end_of_text|>",
    add_bos=False,
)
KIMI = Tokens(
    control=(
        "<|im_system|>",
        "<|im_user|>",
        "<|im_assistant|>",
        "<|im_middle|>",
        "<|im_end|>",
        "<|tool_calls_section_begin|>",
        "<|tool_calls_section_end|>",
        "<|tool_call_begin|>",
        "<|tool_call_argument_begin|>",
        "<|tool_call_end|>",
        "[EOT]",
    ),
    user_defined=("<think>", "</think>"),
    bos="[BOS]",
    eos="[EOS]",
    add_bos=False,
)
GPT_OSS = Tokens(
    control=(
        "<|start|>",
        "<|end|>",
        "<|message|>",
        "<|channel|>",
        "<|constrain|>",
        "<|call|>",
        "<|endoftext|>",
    ),
    bos="<|startoftext|>",
    eos="<|return|>",
    add_bos=False,
)


def _glm_calls(*calls: str, newline: str = "\n") -> str:
    return "".join(
        f"<tool_call>{call}{newline}<arg_key>city</arg_key>{newline}"
        f"<arg_value>Paris</arg_value>{newline}</tool_call>"
        for call in calls
    )


def _deepseek_r1_calls(*calls: str) -> str:
    inner = "\n".join(
        f"<｜tool▁call▁begin｜>function<｜tool▁sep｜>{call}\n```json\n"
        f'{{"city": "Paris"}}\n```<｜tool▁call▁end｜>'
        for call in calls
    )
    return f"<｜tool▁calls▁begin｜>{inner}<｜tool▁calls▁end｜>"


def _deepseek_v31_calls(*calls: str) -> str:
    inner = "".join(
        f'<｜tool▁call▁begin｜>{call}<｜tool▁sep｜>{{"city": "Paris"}}<｜tool▁call▁end｜>'
        for call in calls
    )
    return f"<｜tool▁calls▁begin｜>{inner}<｜tool▁calls▁end｜>"


def _kimi_calls(*calls: str) -> str:
    inner = "".join(
        f"<|tool_call_begin|>functions.{call}:{index}<|tool_call_argument_begin|>"
        f'{{"city": "Paris"}}<|tool_call_end|>'
        for index, call in enumerate(calls)
    )
    return f"<|tool_calls_section_begin|>{inner}<|tool_calls_section_end|>"


FAMILIES = (
    _family(
        "gpt-oss",
        "openai-gpt-oss-120b.jinja",
        GPT_OSS,
        answer=f"<|channel|>final<|message|>{ANSWER}",
        think=f"<|channel|>analysis<|message|>{THOUGHT}<|end|><|start|>assistant"
        f"<|channel|>final<|message|>{ANSWER}",
        one_call="<|channel|>analysis<|message|>I need the weather.<|end|><|start|>assistant"
        "<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris"}<|call|>',
        thoughts={"one_call": "I need the weather."},
        result=f"<|channel|>final<|message|>{RESULT_ANSWER}",
    ),
    _family(
        "qwen3",
        "Qwen-Qwen3-0.6B.jinja",
        Tokens(**CHATML),
        think=f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}",
        thoughts={"think": THOUGHT + "\n"},
        one_call=_hermes_calls("get_weather"),
        two_calls=_hermes_calls("get_weather", "get_time"),
    ),
    _family(
        "qwen3-coder",
        "Qwen3-Coder.jinja",
        Tokens(**CHATML),
        one_call="<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>"
        "\n</function>\n</tool_call>",
        two_calls="<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
        "</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>"
        "\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
    ),
    _family(
        "glm-4.6",
        "GLM-4.6.jinja",
        GLM,
        think=f"<think>{THOUGHT}</think>{ANSWER}",
        one_call=_glm_calls("get_weather"),
        two_calls=_glm_calls("get_weather") + "\n" + _glm_calls("get_time"),
    ),
    _family(
        "glm-4.7-flash",
        "GLM-4.7-Flash.jinja",
        GLM,  # the prompt opens the thoughts
        answer=f"Just answer.</think>{ANSWER}",
        think=f"{THOUGHT}</think>{ANSWER}",
        one_call="I need the weather.</think>" + _glm_calls("get_weather", newline=""),
        two_calls="I need both.</think>" + _glm_calls("get_weather", "get_time", newline=""),
        result=f"Got it.</think>{RESULT_ANSWER}",
        thoughts={**OPEN_THOUGHTS, "result": "Got it."},
    ),
    _family(
        "deepseek-r1",
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
        DEEPSEEK,
        answer=f"Just answer.</think>{ANSWER}",
        think=f"{THOUGHT}</think>{ANSWER}",
        one_call="I need the weather.</think>" + _deepseek_r1_calls("get_weather"),
        two_calls="I need both.</think>" + _deepseek_r1_calls("get_weather", "get_time"),
        thoughts={
            case: "\n" + thought for case, thought in {**OPEN_THOUGHTS, "think": THOUGHT}.items()
        },
        llamacpp_reads=_eos_kept(
            "\n",
            "the end-of-sentence token is both the end of text and a token the parser keeps: "
            "its text ends every answer, and calls followed by it do not parse",
        ),
    ),
    _family(
        "deepseek-v3.1",
        "deepseek-ai-DeepSeek-V3.1.jinja",
        DEEPSEEK,
        answer=f"Just answer.</think>{ANSWER}",
        think=f"{THOUGHT}</think>{ANSWER}",
        one_call="I need the weather.</think>" + _deepseek_v31_calls("get_weather"),
        two_calls="I need both.</think>" + _deepseek_v31_calls("get_weather", "get_time"),
        thoughts=OPEN_THOUGHTS,
    ),
    _family(
        "kimi-k2",
        "Kimi-K2-Instruct.jinja",
        KIMI,
        think=f"<think>{THOUGHT}</think>{ANSWER}",
        one_call=_kimi_calls("get_weather"),
        two_calls=_kimi_calls("get_weather", "get_time"),
        call_id="functions.get_weather:0",
    ),
    _family(
        "llama-3.1",
        "meta-llama-Llama-3.1-8B-Instruct.jinja",
        LLAMA3,
        one_call='{"name": "get_weather", "parameters": {"city": "Paris"}}',
    ),
    _family(
        "mistral-nemo",
        "mistralai-Mistral-Nemo-Instruct-2407.jinja",
        Tokens(control=MISTRAL, bos="<s>", eos="</s>", add_bos=True),
        one_call='[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, '
        '"id": "a1b2c3d4e"}]',
        two_calls='[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, '
        '"id": "a1b2c3d4e"}, {"name": "get_time", "arguments": '
        '{"city": "Paris"}, "id": "f5g6h7i8j"}]',
        call_id="a1b2c3d4e",
    ),
    _family(
        "devstral",
        "unsloth-mistral-Devstral-Small-2507.jinja",
        TEKKEN,
        one_call='[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
        two_calls='[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}'
        '[TOOL_CALLS]get_time[ARGS]{"city": "Paris"}',
    ),
    _family(
        "mistral-small-3.2",
        "Mistral-Small-3.2-24B-Instruct-2506.jinja",
        TEKKEN,
        one_call='[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}',
        two_calls='[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}'
        '[TOOL_CALLS]get_time[CALL_ID]f5g6h7i8j[ARGS]{"city": "Paris"}',
        call_id="a1b2c3d4e",
        llamacpp_reads={
            "two_calls": Otherwise(
                "with the model's real end of text, llama.cpp builds a parser that expects "
                "one call's layout only: two calls do not parse"
            )
        },
    ),
    _family(
        "granite-4.0",
        "ibm-granite-granite-4.0.jinja",
        GRANITE,
        one_call=_hermes_calls("get_weather"),
        two_calls=_hermes_calls("get_weather", "get_time"),
    ),
    _family(
        "granite-3.3",
        "ibm-granite-granite-3.3-2B-Instruct.jinja",
        GRANITE,
        think=f"<think>{THOUGHT}</think>{ANSWER}",
        one_call='<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        llamacpp_reads={
            "one_call": Otherwise(
                "its template writes no tool calls, so llama.cpp reads none: the call stays text",
                Reading('[{"name": "get_weather", "arguments": {"city": "Paris"}}]'),
            )
        },
    ),
    _family(
        "hermes-3",
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
        Tokens(
            control=(
                "<|begin_of_text|>",
                "<|im_start|>",
                "<|im_end|>",
                "<|eot_id|>",
                "<|end_of_text|>",
            ),
            user_defined=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"),
            bos="<|begin_of_text|>",
            eos="<|im_end|>",
            add_bos=True,
        ),
        one_call=_hermes_calls("get_weather"),
        two_calls=_hermes_calls("get_weather", "get_time"),
    ),
    _family(
        "qwen2.5",
        "Qwen-Qwen2.5-7B-Instruct.jinja",
        Tokens(**CHATML),
        one_call=_hermes_calls("get_weather"),
        two_calls=_hermes_calls("get_weather", "get_time"),
    ),
)
