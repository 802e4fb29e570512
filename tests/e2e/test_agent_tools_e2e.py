"""The agent CLIs use a tool through the proxy, for real: Claude Code (``claude -p``) and Codex
CLI (``codex exec``), in front of a model with the real chat template of a family agents run
today (gpt-oss, Qwen3-Coder), through current llama-server's own chat layer.

The model (see :mod:`.scriptedmodel`) first calls the agent's own shell tool, in its family's
syntax, to write a file; once the tool's result is in its prompt (the template's result
marker: gpt-oss's `` to=assistant``, Qwen3-Coder's ``<tool_response>``), it answers and
stops. The file must exist, the CLI must print the answer and exit 0.
"""

from __future__ import annotations

import json

import openai
import pytest
import requests

from tests.images import picture
from tests.processes import ADMIN, ProxyProcess

from . import agents
from .agent_tools import AGENT_FAMILIES, ANSWER, COMMAND, CONTEXT, WRITTEN, family, qwen3_coder_call
from .llama_server import LlamaServer
from .scriptedmodel import Script, write_scripted_gguf
from .visionmodel import IMAGE_ANSWER, TRIGGER, trigger_embedding, write_projector

pytestmark = pytest.mark.e2e

# each agent's shell tool, and the arguments that run COMMAND with it
SHELLS = {
    "claude": ("Bash", {"command": COMMAND, "description": "Write notes.txt"}),
    "codex": ("exec_command", {"cmd": COMMAND}),
}


# each agent with the family its users run locally most: the server's chat layer reads a
# family alike whichever agent asks, so each agent and each family is run once
PAIRS = [("claude", "qwen3-coder"), ("codex", "gpt-oss")]


@pytest.fixture(scope="module", params=PAIRS, ids="-".join)
def served(request, tmp_path_factory, logs):
    """A model of the family that calls ``agent``'s shell, on llama-server, behind the proxy."""
    agent, family_name = request.param
    write_call, answer, marker = AGENT_FAMILIES[family_name]
    name, arguments = SHELLS[agent]
    scripts = [Script(write_call(name, arguments)), Script(answer, trigger=marker)]
    model = write_scripted_gguf(
        tmp_path_factory.mktemp("agent") / f"{family_name}-{agent}.gguf",
        scripts,
        family(family_name).tokens,
        family(family_name).chat_template(),
        name=family_name,
    )
    with (
        LlamaServer(
            model, logs / f"tools-{family_name}-{agent}.log", parallel=1, ctx_size=CONTEXT
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-tools-{family_name}-{agent}.log",
            args=["--api-key", "sk-agent", "--upstream-timeout", "600", "--capture", "on"],
        ) as proxy,
    ):
        yield agent, server, proxy


def test_the_agent_runs_the_models_tool_call_and_the_inspector_shows_each_turn(served, tmp_path):
    agent, server, proxy = served
    run = claude if agent == "claude" else codex
    result = run(proxy, tmp_path)
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "notes.txt").read_text() == WRITTEN
    assert ANSWER in result.stdout
    assert "Traceback" not in proxy.log()
    inspected(agent, server, proxy)


def session(agent: str, proxy: ProxyProcess) -> list:
    """The agent's turns with its tools the inspector kept, oldest first."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    api = "anthropic" if agent == "claude" else "responses"
    briefs = requests.get(
        f"{proxy.url}/admin/exchanges?api={api}&limit=1000", headers=headers, timeout=30
    ).json()["exchanges"]
    turns = [
        requests.get(f"{proxy.url}/admin/exchanges/{b['id']}", headers=headers, timeout=60).json()
        for b in reversed(briefs)
    ]
    return [
        t
        for t in turns
        if t["upstream_body"] and isinstance(t["request"], dict) and t["request"].get("tools")
    ]


def inspected(agent: str, server: LlamaServer, proxy: ProxyProcess) -> None:
    """The session's turns as the inspector keeps them: each with the prompt the server's
    chat layer rendered (as its ``/apply-template`` renders what went upstream), the turn
    that called the shell, and the turn after it linked to it, going on from its prompt."""
    turns = session(agent, proxy)
    shell = SHELLS[agent][0]
    calling = next(i for i, turn in enumerate(turns) if shell in json.dumps(turn["answer"]))
    called, after = turns[calling], turns[calling + 1]
    for turn in (called, after):
        assert turn["upstream_route"] == "/v1/chat/completions" and turn["prompt_by"] == "server"
        rendered = requests.post(
            server.url + "/apply-template", json=turn["upstream_body"], timeout=60
        ).json()["prompt"]
        assert turn["prompt"] == rendered
        assert turn["raw"] is None  # the server read the call out of the text itself
    assert after["previous"] == called["id"]
    assert after["prompt"].startswith(called["prompt"]) and after["divergence"]["reused_all"]
    print(json.dumps({"turns": len(turns), "divergence": after["divergence"]}, indent=1))


def claude(proxy: ProxyProcess, cwd):
    return agents.claude(
        proxy.url,
        "sk-agent",
        cwd,
        "-p",
        "Write notes.txt, then tell me.",
        "--model",
        "local-model",
        "--max-turns",
        "3",
        "--allowedTools",
        "Bash",
        "--output-format",
        "text",
    )


def codex(proxy: ProxyProcess, cwd):
    return agents.codex(
        proxy.url,
        "sk-agent",
        cwd,
        "--ephemeral",
        "--dangerously-bypass-approvals-and-sandbox",
        "Write notes.txt, then tell me.",
    )


@pytest.fixture(scope="module")
def cramped(tmp_path_factory, logs):
    """A model whose context is far too small for an agent's prompt."""
    qwen = family("qwen3-coder")
    model = write_scripted_gguf(
        tmp_path_factory.mktemp("cramped") / "cramped.gguf",
        qwen.scripts(),
        qwen.tokens,
        qwen.chat_template(),
    )
    with (
        LlamaServer(model, logs / "cramped.log", parallel=1, ctx_size=2048) as server,
        ProxyProcess(
            server.url, logs / "proxy-cramped.log", args=["--api-key", "sk-agent"]
        ) as proxy,
    ):
        yield proxy


def test_claude_code_reports_a_prompt_too_long_as_against_anthropics_own_api(cramped, tmp_path):
    result = agents.claude(
        cramped.url,
        "sk-agent",
        tmp_path,
        "-p",
        "hi",
        "--model",
        "local-model",
        "--output-format",
        "json",
    )
    report = json.loads(result.stdout)
    print(report["result"])
    assert report["is_error"] and report["terminal_reason"] == "prompt_too_long"
    assert report["result"].startswith("Prompt is too long")
    assert "127.0.0.1" not in result.stdout + result.stderr


def test_openai_clients_get_context_length_exceeded_with_the_counts(cramped):
    long_text = "the weather in Paris " * 1500
    with pytest.raises(openai.BadRequestError) as chat_error:
        cramped.sdk(api_key="sk-agent").chat.completions.create(
            model="m", messages=[{"role": "user", "content": long_text}]
        )
    with pytest.raises(openai.BadRequestError) as responses_error:
        cramped.sdk(api_key="sk-agent").responses.create(model="m", input=long_text)
    for error in (chat_error.value, responses_error.value):
        assert error.code == "context_length_exceeded"
        assert "maximum context length is 2048 tokens" in error.message
        assert "127.0.0.1" not in error.message


# each agent's tool that shows the model a picture, and its arguments for the file at PATH
VIEWERS = {"claude": ("Read", "file_path", "Read"), "codex": ("view_image", "path", "")}


@pytest.mark.parametrize("agent", list(VIEWERS))
def test_the_agent_shows_the_model_a_picture_and_the_model_sees_it(agent, tmp_path_factory, logs):
    """The agent is told to look at a picture: the model (Qwen3-Coder's template, with a
    vision projector) calls the agent's tool that opens it, the picture comes back as an
    image (Claude Code: an ``image`` block in the tool's result; Codex: an ``input_image``),
    and only a model that saw it answers :data:`IMAGE_ANSWER`."""
    work = tmp_path_factory.mktemp(f"{agent}-image")
    image = work / "cat.png"
    image.write_bytes(picture(size=(64, 64)))
    tool, argument, allowed = VIEWERS[agent]
    files = tmp_path_factory.mktemp("vision-agent")
    qwen = family("qwen3-coder")
    model = write_scripted_gguf(
        files / "qwen3-coder-vision.gguf",
        [
            Script(qwen3_coder_call(tool, {argument: str(image)})),
            Script(IMAGE_ANSWER, trigger=TRIGGER),
        ],
        qwen.tokens,
        qwen.chat_template(),
        name="qwen3-coder-vision",
    )
    mmproj = write_projector(files / "mmproj-qwen3-coder-vision.gguf", trigger_embedding(model))
    with (
        LlamaServer(
            model,
            logs / f"tools-{agent}-image.log",
            parallel=1,
            ctx_size=CONTEXT,
            extra_args=["--mmproj", str(mmproj)],
        ) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-tools-{agent}-image.log",
            args=["--api-key", "sk-agent", "--upstream-timeout", "600"],
        ) as proxy,
    ):
        prompt = "Look at cat.png and tell me what it shows."
        if agent == "claude":
            result = agents.claude(
                proxy.url,
                "sk-agent",
                work,
                "-p",
                prompt,
                "--model",
                "local-model",
                "--max-turns",
                "3",
                "--allowedTools",
                allowed,
                "--output-format",
                "text",
            )
        else:
            result = agents.codex(
                proxy.url,
                "sk-agent",
                work,
                "--ephemeral",
                "--dangerously-bypass-approvals-and-sandbox",
                prompt,
            )
        print(result.stdout[-3000:], result.stderr[-3000:])
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        assert IMAGE_ANSWER in result.stdout
        assert "Traceback" not in proxy.log()


@pytest.fixture(scope="module", params=list(SHELLS))
def rendered_here(request, tmp_path_factory, logs):
    """A Qwen3 model that calls the agent's shell in Hermes' syntax, its template named by the
    operator (so the proxy renders it and reads the call, as on every old server)."""
    agent = request.param
    name, arguments = SHELLS[agent]
    qwen = family("qwen3")
    call = (
        "<think>I will write the file.</think>\n<tool_call>\n"
        + json.dumps({"name": name, "arguments": arguments})
        + "\n</tool_call>"
    )
    folder = tmp_path_factory.mktemp("rendered-here")
    model = write_scripted_gguf(
        folder / f"qwen3-{agent}.gguf",
        [Script(call), Script(ANSWER, trigger="<tool_response>")],
        qwen.tokens,
        qwen.chat_template(),
        name="qwen3",
    )
    template = folder / "qwen3.jinja"
    template.write_text(qwen.chat_template())
    with (
        LlamaServer(model, logs / f"rendered-{agent}.log", parallel=1, ctx_size=CONTEXT) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-rendered-{agent}.log",
            args=[
                "--api-key",
                "sk-agent",
                "--upstream-timeout",
                "600",
                "--capture",
                "on",
                "--chat-template",
                str(template),
            ],  # fmt: skip
        ) as proxy,
    ):
        yield agent, proxy


def test_the_inspector_keeps_the_calls_syntax_and_finds_the_thoughts_left_the_cache(
    rendered_here, tmp_path
):
    agent, proxy = rendered_here
    result = (claude if agent == "claude" else codex)(proxy, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "notes.txt").read_text() == WRITTEN
    turns = session(agent, proxy)
    shell = SHELLS[agent][0]
    calling = next(i for i, turn in enumerate(turns) if f'"name": "{shell}"' in (turn["raw"] or ""))
    called, after = turns[calling], turns[calling + 1]
    assert called["raw"].startswith("<think>I will write the file.</think>\n<tool_call>\n")
    for turn in (called, after):
        assert turn["prompt_by"] == "proxy" and turn["upstream_route"] == "/completion"
        assert turn["upstream_body"]["prompt"] == turn["prompt"]
    assert after["previous"] == called["id"] and "<tool_response>" in after["prompt"]
    parted = after["divergence"]
    print(json.dumps({"called": called["raw"], "divergence": parted}, indent=1))
    # the thoughts come back otherwise than the model wrote them (Claude Code leaves them out,
    # the template puts Codex's on lines of their own): the cache is left within the answer,
    # at the thoughts, and all after them is read again
    thoughts = len(called["prompt"]) + called["raw"].index("I will write")
    assert parted["in_answer"] and len(called["prompt"]) < parted["character"] <= thoughts
