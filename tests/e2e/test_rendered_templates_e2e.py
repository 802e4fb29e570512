"""A template the operator names is rendered by the proxy, and the answer read by its own
parsers, on ``POST /completion`` (as for servers that have no chat layer): with today's real
templates, earlier calls reach the template as it reads them (arguments as a mapping, ids as
Mistral's templates demand), and the markers calls are read by come back even where the
model's tokenizer holds them as control tokens.

Each family's tiny model (:mod:`.families`) writes its own output; the proxy is started with
``--chat-template`` naming the family's template file.
"""

from __future__ import annotations

import json

import pytest

from tests.processes import ProxyProcess

from .families import FAMILIES, PARIS, TOOLS, TRIGGERS, Family, Reading
from .llama_server import LlamaServer
from .scriptedmodel import write_scripted_gguf

pytestmark = pytest.mark.e2e

# the families whose calls the proxy's own formats read, and the cases it must get right
RENDERED = {
    "qwen2.5": ("answer", "one_call", "two_calls", "result"),
    "hermes-3": ("answer", "one_call", "two_calls", "result"),
    "mistral-nemo": ("answer", "one_call", "two_calls", "result"),
    "llama-3.1": ("answer", "one_call", "result"),
    # calls of its own syntax are no format of the proxy's: its second turn still
    # renders (its template iterates the earlier call's arguments as a mapping)
    "qwen3-coder": ("answer", "result"),
}
CASES = [
    (family, case)
    for family in FAMILIES
    if family.name in RENDERED
    for case in RENDERED[family.name]
]


@pytest.fixture(scope="module")
def farm(tmp_path_factory, logs):
    """One family at a time on llama-server, the proxy rendering its template itself."""
    running: dict = {}
    yield lambda family: running.get(family.name) or _serve(family, running, tmp_path_factory, logs)
    for server, proxy in running.values():
        proxy.stop()
        server.stop()


def _serve(family: Family, running: dict, tmp_path_factory, logs) -> tuple:
    for server, proxy in running.values():
        proxy.stop()
        server.stop()
    running.clear()
    folder = tmp_path_factory.mktemp(family.name)
    template = folder / family.template
    template.write_text(family.chat_template(), encoding="utf-8")
    model = write_scripted_gguf(
        folder / "model.gguf",
        family.scripts(),
        family.tokens,
        family.chat_template(),
        name=family.name,
    )
    server = LlamaServer(model, logs / f"rendered-{family.name}.log", parallel=1, ctx_size=8192)
    server.start()
    proxy = ProxyProcess(
        server.url,
        logs / f"proxy-rendered-{family.name}.log",
        args=["--chat-template", str(template)],
    ).start()
    running[family.name] = (server, proxy)
    return server, proxy


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("family, case", CASES, ids=[f"{f.name}-{c}" for f, c in CASES])
def test_the_proxys_renderer_reads_todays_templates(farm, family, case, stream):
    _, proxy = farm(family)
    messages = [{"role": "user", "content": f"{TRIGGERS.get(case, '')} Weather?".strip()}]
    if case == "result":  # ids as llama.cpp writes them: 32 letters and digits
        messages = [
            {"role": "user", "content": f"{TRIGGERS['one_call']} Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "Xb3k9Qz7Lm2Pq8Rt5Vw1Yc4Nd6Fh0Jg",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps(PARIS)},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "Xb3k9Qz7Lm2Pq8Rt5Vw1Yc4Nd6Fh0Jg",
                "content": f"Sunny {TRIGGERS['result']}",
            },
        ]
    options = dict(model="any", messages=messages, tools=list(TOOLS), temperature=0, max_tokens=200)
    client = proxy.sdk()
    if stream:
        text, calls, finish = [], {}, None
        for chunk in client.chat.completions.create(**options, stream=True):
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                for call in choice.delta.tool_calls or ():
                    name, arguments = calls.get(call.index, ("", ""))
                    calls[call.index] = (
                        name or call.function.name or "",
                        arguments + (call.function.arguments or ""),
                    )
                finish = choice.finish_reason or finish
        reading = Reading(
            "".join(text),
            "",
            tuple((name, json.loads(arguments)) for name, arguments in calls.values()),
            finish,
        )
    else:
        choice = client.chat.completions.create(**options).choices[0]
        reading = Reading(
            choice.message.content or "",
            "",
            tuple(
                (call.function.name, json.loads(call.function.arguments))
                for call in choice.message.tool_calls or ()
            ),
            choice.finish_reason,
        )
    print(f"{family.name} {case}: {reading}")
    expected = family.expected[case]
    assert reading == Reading(expected.content.strip(), "", expected.calls, expected.finish)
    assert "Traceback" not in proxy.log()
