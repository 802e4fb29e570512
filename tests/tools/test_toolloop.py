"""The tool loop's rules, on a scripted router and toolbox: a hosted call is run and its
result read by the next turn; the loop ends at text, at a client's call, at an approval to
ask for, and at its last turn, which is offered no hosted tool; a stream holds a hosted
call's pieces and tells its run instead; usage adds up across the turns."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from proxy.access.keyring import owner_of
from proxy.core import generation
from proxy.core.answers import Chunk, Completion, Served, Usage, pieces
from proxy.core.caller import Caller
from proxy.core.errors import ToolNotAllowedError, ToolTimeoutError, UpstreamError
from proxy.core.events import WAITING, TextDelta, ToolCallStart, ToolRan, ToolsListed, UsageReport
from proxy.core.party import Party
from proxy.core.tooluse import Approval, ToolListing, ToolRun, ToolUse
from proxy.core.types import GenerationRequest, Message, ToolCall, function_tool
from proxy.ops import measure as measuring
from proxy.ops.modelside import ModelSide
from proxy.tools import toolloop
from proxy.tools.results import ToolResult, ToolSpec
from proxy.tools.toolloop import ToolLoop

READ = ToolSpec("read_file", "Read a file", {"type": "object", "properties": {"path": {}}})
FS = ToolUse("fs", label="fs")
ASKED = GenerationRequest(messages=(Message("user", "what is in a.txt?"),), uses=(FS,))
CLIENT_TOOL = function_tool("shell", {"type": "object"})
HELLO = ToolResult("hello from a.txt")


def call(name="read_file", arguments='{"path": "a.txt"}', id="c1"):
    return ToolCall(id, name, arguments)


class Router:
    """Answers each turn with the next of ``answers`` (a Completion), and keeps each turn's
    request."""

    concurrent = True

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def starting(self, target=None):
        return False

    def complete(self, request):
        self.asked.append(request)
        return self.answers[len(self.asked) - 1]

    def stream(self, request):
        answer = self.complete(request)
        if answer.text:
            yield Chunk(answer.text[:3])
            yield Chunk(answer.text[3:])
        yield Chunk(
            tool_calls=pieces(answer.tool_calls),
            finish_reason=answer.finish_reason,
            usage=answer.usage,
        )


class Toolbox:
    def __init__(self, result=HELLO, error=None):
        self.result, self.error = result, error
        self.calls = []
        self.keys = set()  # the keys whose sessions were used

    def list_tools(self, server, timeout=None, key=""):
        self.keys.add(key)
        return (READ,)

    def call(self, server, tool, arguments, timeout=None, key="", trace_context=None):
        self.keys.add(key)
        self.calls.append((server, tool, arguments))
        if self.error is not None:
            raise self.error
        return self.result


def answer(text="", calls=(), reason=None, usage=Usage(10, 2)):
    return Completion(text, reason or ("tool_calls" if calls else "stop"), usage, tool_calls=calls)


def test_a_hosted_call_is_run_and_the_next_turn_reads_its_result():
    router = Router(answer("Let me look.", (call(),)), answer("It says hello."))
    toolbox = Toolbox()
    done = ToolLoop(router, toolbox).complete(ASKED)
    assert toolbox.calls == [("fs", "read_file", {"path": "a.txt"})]
    assert done.text == "Let me look.\n\nIt says hello."
    assert done.finish_reason == "stop" and done.tool_calls == ()
    assert done.usage == Usage(20, 4)
    listing, run = done.runs
    assert listing == ToolListing("fs", (("read_file", READ.description, READ.input_schema),))
    assert run == ToolRun("c1", "fs", "read_file", '{"path": "a.txt"}', output="hello from a.txt")
    first, second = router.asked
    assert [tool["function"]["name"] for tool in first.tools] == ["read_file"]
    assistant, result = second.messages[-2:]
    assert assistant.tool_calls == (call(),) and assistant.content == "Let me look."
    assert (result.role, result.content, result.tool_call_id) == ("tool", "hello from a.txt", "c1")


def test_the_calls_of_a_key_are_made_in_its_owners_sessions_of_the_servers():
    """Its owner's, never its name's: another secret under the same name has sessions of
    its own."""
    router = Router(answer("Let me look.", (call(),)), answer("It says hello."))
    toolbox = Toolbox()
    owner = owner_of(b"sk-alice")
    ToolLoop(router, toolbox).complete(ASKED.served_for(Caller(Party("alice"), owner=owner)))
    assert toolbox.keys == {owner} and toolbox.calls


@pytest.mark.parametrize(
    "toolbox, arguments, read",
    [
        (
            Toolbox(error=ToolTimeoutError("the MCP server 'fs' did not answer within 1 s")),
            None,
            "Error: the MCP server 'fs' did not answer within 1 s",
        ),
        (Toolbox(ToolResult("no such file", is_error=True)), None, "Error: no such file"),
        (Toolbox(), "{not json", "Error: the arguments are not valid JSON"),
    ],
)
def test_a_failed_call_is_the_models_to_read(toolbox, arguments, read):
    first = call(arguments=arguments) if arguments else call()
    router = Router(answer("", (first,)), answer("Sorry."))
    done = ToolLoop(router, toolbox).complete(ASKED)
    assert router.asked[1].messages[-1].content == read
    assert done.runs[1].error == read.removeprefix("Error: ") and done.text == "Sorry."


def test_a_call_of_the_clients_own_tool_ends_the_loop_for_the_client():
    asked = replace(ASKED, tools=(CLIENT_TOOL,))
    router = Router(answer("", (call("shell", "{}", "c9"),)))
    done = ToolLoop(router, Toolbox()).complete(asked)
    assert done.finish_reason == "tool_calls" and done.tool_calls == (call("shell", "{}", "c9"),)
    assert [type(step) for step in done.runs] == [ToolListing]


def test_a_call_waiting_for_approval_is_not_run_and_ends_the_answer():
    asked = replace(ASKED, uses=(replace(FS, approval=True),))
    toolbox = Toolbox()
    done = ToolLoop(Router(answer("", (call(),))), toolbox).complete(asked)
    assert toolbox.calls == [] and done.finish_reason == "stop"
    run = done.runs[-1]
    assert run.pending and run.approval_id.startswith("mcpr_") and run.output == ""


@pytest.mark.parametrize("approve, ran", [(True, True), (False, False)])
def test_an_approved_call_runs_before_the_first_turn_and_a_refused_one_is_told(approve, ran):
    approval = Approval("mcpr_1", "fs", "read_file", '{"path": "a.txt"}', approve)
    asked = replace(ASKED, approvals=(approval,), uses=(replace(FS, approval=True),))
    toolbox, router = Toolbox(), Router(answer("It says hello."))
    done = ToolLoop(router, toolbox).complete(asked)
    assert bool(toolbox.calls) == ran
    run = done.runs[-1]
    assert run.approval_id == "mcpr_1" and (run.output == "hello from a.txt") == ran
    told = router.asked[0].messages[-1]
    assert told.role == "tool" and told.content == (
        "hello from a.txt" if ran else "Error: the user did not approve this call"
    )


WRITE = ToolSpec("write_file", "Write a file", {"type": "object"})


class TwoServers(Toolbox):
    """Two servers with tools of the same names."""

    def list_tools(self, server, timeout=None, key=""):
        return (READ, WRITE)


@pytest.mark.parametrize(
    "label, tool, allowed",
    [("docs", "write_file", False), ("nowhere", "read_file", False), ("docs", "read_file", True),
     ("scratch", "write_file", True)],
)  # fmt: skip
def test_an_approval_runs_only_the_tool_its_label_names_that_the_key_may_run(label, tool, allowed):
    """Granted: the docs server's read_file alone, and every tool of scratch. An approval of
    anything else refuses the whole request before any of it runs, the grants of the
    others with it."""

    def may_run(server, name):
        return server == "scratch" or name == "read_file"

    docs, scratch = ToolUse("docs", label="docs"), ToolUse("scratch", label="scratch")
    fair = Approval("mcpr_0", "scratch", "read_file", "{}", True)
    approval = Approval("mcpr_1", label, tool, '{"path": "x"}', True)
    asked = replace(ASKED, approvals=(fair, approval), uses=(docs, scratch))
    toolbox = TwoServers()
    loop = ToolLoop(Router(answer("ok")), toolbox, may_run=may_run)
    if allowed:
        assert loop.complete(asked).text == "ok" and len(toolbox.calls) == 2
        return
    with pytest.raises(ToolNotAllowedError) as refused:
        loop.complete(asked)
    assert toolbox.calls == [] and refused.value.status == 403
    assert f"the approval 'mcpr_1' is of the tool {tool!r} of {label!r}" in refused.value.message


def test_a_refused_approval_of_any_tool_is_told_the_model_and_runs_nothing():
    refused = Approval("mcpr_1", "elsewhere", "rm", "{}", False, "no thanks")
    done = ToolLoop(Router(answer("ok")), Toolbox()).complete(replace(ASKED, approvals=(refused,)))
    assert done.runs[-1].error == "the user did not approve this call: no thanks"


def test_a_grant_is_checked_again_as_each_call_runs():
    granted = iter([True, False])  # granted as the tools are offered, withdrawn before the run
    router = Router(answer("", (call(),)), answer("Sorry."))
    toolbox = Toolbox()
    done = ToolLoop(router, toolbox, may_run=lambda server, tool: next(granted)).complete(ASKED)
    assert toolbox.calls == [] and done.runs[1].code == "tool_not_allowed"


def test_approvals_past_the_loops_turns_are_not_run():
    approvals = tuple(Approval(f"mcpr_{n}", "fs", "read_file", "{}", True) for n in range(3))
    asked = replace(ASKED, approvals=approvals, uses=(replace(FS, approval=True),))
    toolbox = Toolbox()
    done = ToolLoop(Router(answer("ok")), toolbox, turns=2).complete(asked)
    assert len(toolbox.calls) == 2
    assert [run.code for run in done.runs[1:]] == ["", "", "max_turns_exceeded"]


def test_a_client_gone_stops_the_approved_runs():
    approval = Approval("mcpr_1", "fs", "read_file", "{}", True)
    asked = replace(
        ASKED,
        approvals=(approval,),
        uses=(replace(FS, approval=True),),
        caller=Caller(gone=lambda: True),
    )
    toolbox = Toolbox()
    done = ToolLoop(Router(answer("ok")), toolbox).complete(asked)
    assert toolbox.calls == [] and done.runs[-1].error == "not run: the client went away"


def test_the_last_turn_is_offered_no_hosted_tool():
    router = Router(answer("", (call(id="a"),)), answer("", (call(id="b"),)), answer("Done."))
    done = ToolLoop(router, Toolbox(), turns=3).complete(ASKED)
    assert [len(request.tools) for request in router.asked] == [1, 1, 0]
    assert done.text == "Done." and len(done.runs) == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_hosted_call_the_last_turn_makes_all_the_same_is_not_run_and_ends_it(stream):
    router = Router(answer("", (call(id="a"),)), answer("Still calling.", (call(id="b"),)))
    toolbox = Toolbox()
    loop = ToolLoop(router, toolbox, turns=2)
    if stream:
        events = [e for batch in generation.stream(loop, [ASKED]) for e in batch]
        runs = [e.run for e in events if isinstance(e, ToolRan)]
        finish = events[-1].reason
    else:
        done = loop.complete(ASKED)
        runs, finish = done.runs[1:], done.finish_reason
    assert len(toolbox.calls) == 1 and finish == "stop"
    assert runs[-1].code == "max_turns_exceeded" and runs[-1].output == ""


def test_a_name_a_clients_tool_has_is_offered_under_the_servers_label():
    asked = replace(ASKED, tools=(function_tool("read_file", {"type": "object"}),))
    router = Router(answer("", (call("fs__read_file"),)), answer("ok"))
    toolbox = Toolbox()
    ToolLoop(router, toolbox).complete(asked)
    names = [tool["function"]["name"] for tool in router.asked[0].tools]
    assert names == ["read_file", "fs__read_file"] and toolbox.calls[0][1] == "read_file"


def test_a_key_not_granted_a_tool_is_not_offered_it():
    router = Router(answer("no tools"))
    ToolLoop(router, Toolbox(), may_run=lambda server, tool: tool != "read_file").complete(ASKED)
    assert router.asked[0].tools == ()


def test_a_stream_holds_the_hosted_calls_pieces_and_tells_its_run():
    router = Router(answer("Let me look.", (call(),)), answer("It says hello."))
    batches = list(generation.stream(ToolLoop(router, Toolbox()), [ASKED]))
    events = [event for batch in batches for event in batch]
    assert not any(isinstance(event, ToolCallStart) for event in events)
    kinds = [type(event).__name__ for event in events if not isinstance(event, UsageReport)]
    assert kinds[0] == "ToolsListed" and "ToolRan" in kinds
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    assert text == "Let me look.\n\nIt says hello."
    ran = next(event.run for event in events if isinstance(event, ToolRan))
    assert json.loads(ran.arguments) == {"path": "a.txt"} and ran.output == "hello from a.txt"
    assert kinds.index("ToolRan") > kinds.index("TextDelta")
    (usage,) = [event.usage for event in events if isinstance(event, UsageReport)]
    assert usage == Usage(20, 4)
    assert isinstance(events[0], ToolsListed)


class SlowToolbox(Toolbox):
    """A toolbox whose call ends only once the stream has said it waits."""

    def __init__(self):
        super().__init__()
        self.seen_waiting = threading.Event()

    def call(self, server, tool, arguments, timeout=None, key="", trace_context=None):
        assert self.seen_waiting.wait(30), "the stream said nothing while the tool ran"
        return super().call(server, tool, arguments, timeout)


def test_a_stream_keeps_its_client_company_while_a_tool_runs(monkeypatch):
    monkeypatch.setattr(toolloop, "WAITING_EVERY", 0.01)  # the name the loop reads it by
    router = Router(answer("Let me look.", (call(),)), answer("It says hello."))
    toolbox = SlowToolbox()
    kinds = []
    for batch in generation.stream(ToolLoop(router, toolbox), [ASKED]):
        for event in batch:
            if event is WAITING:
                toolbox.seen_waiting.set()
            kinds.append(type(event).__name__)
    ran = kinds.index("ToolRan")
    assert "Waiting" in kinds[kinds.index("TextDelta") : ran]  # between the call and its run
    assert "Waiting" not in kinds[ran:] and toolbox.calls


@pytest.mark.parametrize("stream", [False, True])
def test_the_tools_time_is_theirs_not_the_proxys(monkeypatch, stream):
    """A clock that moves only while a tool runs: all of its time is taken off the
    proxy's own."""
    clock = [100.0]
    monkeypatch.setattr(measuring, "perf_counter", lambda: clock[0])

    class Slow(Toolbox):
        def call(self, server, tool, arguments, timeout=None, key="", trace_context=None):
            clock[0] += 10
            return super().call(server, tool, arguments, timeout)

    measure = measuring.Measure()
    asked = ASKED.served_for(Caller(measure=measure))
    loop = ToolLoop(Router(answer("", (call(),)), answer("It says hello.")), Slow())
    if stream:
        list(loop.stream(asked))
    else:
        loop.complete(asked)
    assert measure.waited == 10 and clock == [110.0]


def test_each_run_is_kept_for_the_inspector_with_what_it_was_given_and_answered():
    side = ModelSide()
    asked = ASKED.served_for(Caller(side=side))
    router = Router(answer("", (call(),)), answer("It says hello."))
    ToolLoop(router, Toolbox()).complete(asked)
    (run,) = side.gather_facts()["tool_runs"]
    assert {k: run[k] for k in ("server", "tool", "arguments", "output", "error", "cut")} == {
        "server": "fs",
        "tool": "read_file",
        "arguments": '{"path": "a.txt"}',
        "output": "hello from a.txt",
        "error": "",
        "cut": False,
    }
    assert run["ms"] >= 0


def test_a_use_of_at_most_n_calls_refuses_the_next_for_the_model_to_read():
    asked = replace(ASKED, uses=(replace(FS, max_uses=1),))
    router = Router(answer("", (call(id="a"), call(id="b"))), answer("Once was enough."))
    toolbox = Toolbox()
    done = ToolLoop(router, toolbox).complete(asked)
    first, second = done.runs[1:]
    assert len(toolbox.calls) == 1 and first.output == "hello from a.txt"
    assert second.code == "max_uses_exceeded" and "1 times" in second.error


def test_a_result_cut_to_its_servers_bound_is_read_as_cut():
    router = Router(answer("", (call(),)), answer("Part of it."))
    toolbox = Toolbox(ToolResult("x" * 8, truncated=True))
    done = ToolLoop(router, toolbox).complete(ASKED)
    told = router.asked[1].messages[-1].content
    assert told == "x" * 8 + "\n[cut: the gateway kept the first 8 bytes of this result]"
    assert done.runs[1].output == "x" * 8 and done.runs[1].truncated


class TwoModels(Router):
    """Answers each turn as ``Router`` does, each turn made by the model ``models`` names."""

    def __init__(self, models, *answers):
        super().__init__(*answers)
        self.models = models

    def complete(self, request):
        done = super().complete(request)
        return replace(done, served=Served(self.models[len(self.asked) - 1], instead=True))

    def stream(self, request):
        yield Served(self.models[len(self.asked)], instead=True)
        yield from super().stream(request)


@pytest.mark.parametrize("stream", [False, True])
def test_each_turn_is_charged_to_the_model_that_made_it(stream):
    router = TwoModels(
        ("small", "large"),
        answer("", (call(),), usage=Usage(10, 2)),
        answer("Done.", usage=Usage(30, 5)),
    )
    asked = replace(ASKED, caller=Caller(measure=measuring.Measure()))
    loop = ToolLoop(router, Toolbox())
    if stream:
        events = [e for batch in generation.stream(loop, [asked]) for e in batch]
        told = next(e.usage for e in events if isinstance(e, UsageReport))
    else:
        told = generation.complete(loop, [asked])[0].usage
    assert told == Usage(40, 7)  # the client is told the whole
    assert asked.caller.measure.tokens == {
        "small": [10, 2, 0, 0, 0, 0, 0, 0, 0],
        "large": [30, 5, 0, 0, 0, 0, 0, 0, 0],
    }


def test_a_whole_answer_that_fails_midway_is_charged_the_turns_that_ended():
    class FailsLater(TwoModels):
        def complete(self, request):
            if self.asked:
                self.asked.append(request)
                raise UpstreamError("the large model's server broke off")
            return super().complete(request)

    router = FailsLater(("small", "large"), answer("", (call(),), usage=Usage(10, 2)))
    asked = replace(ASKED, caller=Caller(measure=measuring.Measure()))
    with pytest.raises(UpstreamError):
        generation.complete(ToolLoop(router, Toolbox()), [asked])
    assert asked.caller.measure.tokens == {"small": [10, 2, 0, 0, 0, 0, 0, 0, 0]}
