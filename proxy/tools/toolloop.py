"""The tool loop: a request whose model may call hosted tools (its ``hosted`` servers) runs
turn after turn on the router; each call the model makes to one of those tools is run by
the gateway (or held for the client's approval) and its result put in the conversation for
the next turn. The loop ends when the model answers in text, calls a tool of the client's
own, waits for an approval, or has used its turns: the last turn is offered no hosted tool,
so it answers.

What the client sees is one answer: the text of every turn, the listings and runs
(:class:`~proxy.core.events.ToolsListed`, :class:`~proxy.core.events.ToolRan`) where they
happened, and the usage of every turn added up. One loop drives both ways of answering: a
whole answer's turns are whole, a stream's pass each turn's text on as it comes, hold a
hosted call's pieces, and keep the client company while a tool runs.

A tool's output is data: it goes to the model as a tool's result, and the gateway reads
nothing in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import partial
from time import perf_counter
from typing import Callable, Iterator, Optional, Sequence, Union

from proxy.core.errors import ToolError
from proxy.core.events import WAITING, ToolRan, ToolsListed
from proxy.core.meanwhile import WAITING_EVERY, meanwhile
from proxy.core.router import Generator
from proxy.core.types import (
    TOOL_TURNS,
    Approval,
    Chunk,
    Completion,
    GenerationRequest,
    Message,
    ToolCall,
    ToolRun,
    Usage,
    assembled,
)
from proxy.ops.measure import waiting
from proxy.tools.offer import Offer, offer
from proxy.tools.toolbox import Toolbox

BETWEEN = "\n\n"  # between the texts of two turns
MAX_USES = "max_uses_exceeded"  # a run refused: its use's calls were used up
TURNS_USED = "max_turns_exceeded"  # a call not run: the model's last turn made it


def anything(server: str, tool: str) -> bool:
    return True


@dataclass(frozen=True)
class _Said:
    """What one turn said: its text and thoughts, its calls of hosted tools and of the
    client's, and how it ended (its whole answer, or its stream's last chunk, its words
    told already)."""

    text: str
    reasoning: str
    hosted: tuple
    client: tuple
    ended: Union[Completion, Chunk]


class ToolLoop:
    """The router's generations, with the hosted tools of each request run between the
    model's turns: a :class:`~proxy.core.router.Generator`, as the fleet is."""

    concurrent = False  # choices run one after another: each may run tools

    def __init__(
        self,
        router: Generator,
        toolbox: Toolbox,
        *,
        may_run: Callable[[str, str], bool] = anything,
        turns: int = TOOL_TURNS,
    ) -> None:
        self.router, self.toolbox, self.may_run, self.turns = router, toolbox, may_run, turns

    def starting(self, model: Optional[str] = None) -> bool:
        return self.router.starting(model)

    def complete(self, request: GenerationRequest) -> Completion:
        """The answer after every turn, whole: the runs in it."""
        told: list = []
        turns = self._turns(request, _Whole(self.router))
        while True:
            try:
                told.append(next(turns))
            except StopIteration as ended:
                said, texts, usage = ended.value
                break
        runs = tuple(
            event.run if type(event) is ToolRan else event.listing
            for event in told
            if type(event) in (ToolRan, ToolsListed)
        )
        return replace(
            said.ended,
            text=BETWEEN.join(texts),
            tool_calls=said.client,
            finish_reason=_ended(said.ended.finish_reason, said.hosted, said.client),
            usage=usage,
            runs=runs,
        )

    def stream(self, request: GenerationRequest) -> Iterator:
        """The answer's chunks, turn after turn, each run told after the text that led to
        it; the last chunk with every turn's usage."""
        ended = yield from self._turns(request, _Streamed(self.router))
        if ended is not None:
            said, _, usage = ended
            yield replace(
                said.ended,
                usage=usage,
                finish_reason=_ended(said.ended.finish_reason, said.hosted, said.client),
            )

    def _turns(self, request: GenerationRequest, way: "_Whole") -> Iterator:
        """Every turn of ``request``, each taken the ``way`` the client is answered: yields
        what the client is told as it happens; returns ``(the last turn's _Said, every
        turn's text, their usage)``, or ``None`` where a turn's stream ended without a
        finish."""
        progress = _Progress(self, request)
        yield from progress.begin()
        texts: list = []
        usage = Usage()
        for turn in range(self.turns):
            last = turn == self.turns - 1
            said = yield from way.turn(progress.turn(last), progress.offer, bool(texts), turn > 0)
            if said is None:
                return None
            usage += said.ended.usage or Usage()
            if said.text:
                texts.append(said.text)
            ran = (
                (yield from way.run(partial(progress.run, said.hosted, last)))
                if said.hosted
                else []
            )
            for run in ran:
                yield ToolRan(run)
            if not said.hosted or said.client or last or _waits(ran) or progress.gone():
                return said, texts, usage
            progress.went_on(said.text, said.reasoning, said.hosted, ran)
        raise AssertionError("the last turn ends the loop")  # pragma: no cover


class _Whole:
    """A whole answer's way: each turn whole, the client told nothing before it ends, the
    tools run at once."""

    def __init__(self, router: Generator) -> None:
        self.router = router

    def turn(
        self, request: GenerationRequest, offered: Offer, wrote: bool, later: bool
    ) -> Iterator:
        completion = self.router.complete(request)
        hosted = tuple(call for call in completion.tool_calls if offered.is_offered(call.name))
        client = tuple(call for call in completion.tool_calls if not offered.is_offered(call.name))
        yield from ()
        return _Said(completion.text, completion.reasoning, hosted, client, completion)

    def run(self, work: Callable[[], list]) -> Iterator:
        yield from ()
        return work()


class _Streamed:
    """A stream's way: each turn's chunks as the client gets them (its hosted calls' pieces
    held), and the client kept company while a tool runs."""

    def __init__(self, router: Generator) -> None:
        self.router = router

    def turn(
        self, request: GenerationRequest, offered: Offer, wrote: bool, later: bool
    ) -> Iterator:
        """The turn's chunks, its last one's words too; ``None`` where it ended without a
        finish (as the backend told it)."""
        turn = _Turn()
        chunks = self.router.stream(request)
        try:
            for chunk in chunks:
                if type(chunk) is not Chunk:  # who answered, the upstream's lines: as they come
                    yield chunk
                    continue
                chunk = turn.read(chunk, offered, wrote, later)
                if chunk.finish_reason is None:
                    yield chunk
                    continue
                words = replace(chunk, finish_reason=None, usage=None, stop_sequence=None)
                if words.text or words.reasoning or words.tool_calls or words.logprobs:
                    yield words
                ended = replace(chunk, text="", reasoning="", tool_calls=(), logprobs=())
                return _Said(turn.text, turn.reasoning, assembled(turn.held), turn.client, ended)
        finally:
            chunks.close()
        return None

    def run(self, work: Callable[[], list]) -> Iterator:
        return meanwhile(work, WAITING, patience=WAITING_EVERY, every=WAITING_EVERY)


class _Turn:
    """What one turn of a stream wrote: its text and thoughts, the pieces of its hosted
    calls (held), and its calls of the client's tools."""

    def __init__(self) -> None:
        self.texts: list = []
        self.thoughts: list = []
        self.held: list = []
        self.hosted: set = set()  # the indexes of its hosted calls
        self.passed: list = []  # the pieces of the client's calls

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def reasoning(self) -> str:
        return "".join(self.thoughts)

    @property
    def client(self) -> tuple:
        return assembled(self.passed)

    def read(self, chunk: Chunk, offered: Offer, wrote: bool, later: bool) -> Chunk:
        """``chunk`` as the client gets it: without the hosted calls' pieces, a later
        turn's without the prompt's count, and the first text of a turn after another's
        set apart from it."""
        if chunk.tool_calls:
            chunk = self._held(chunk, offered)
        if later and chunk.prompt_count is not None:
            chunk = replace(chunk, prompt_count=None)
        if chunk.text:
            first = not self.texts
            self.texts.append(chunk.text)
            if first and wrote:
                chunk = replace(chunk, text=BETWEEN + chunk.text)
        if chunk.reasoning:
            self.thoughts.append(chunk.reasoning)
        return chunk

    def _held(self, chunk: Chunk, offered: Offer) -> Chunk:
        passed = []
        for piece in chunk.tool_calls:
            if piece.name is not None and offered.is_offered(piece.name):
                self.hosted.add(piece.index)
            if piece.index in self.hosted:
                self.held.append(piece)
            else:
                passed.append(piece)
        self.passed += passed
        return replace(chunk, tool_calls=tuple(passed))


def _ended(reason: str, hosted: Sequence, client: Sequence) -> str:
    """Why the answer ended: the client's calls, else the model's own reason, but a turn
    that called hosted tools only (held for approval, or the client gone) stopped."""
    if client:
        return "tool_calls"
    return "stop" if hosted else reason


def _waits(runs: Sequence) -> bool:
    """Whether a run waits for the client's approval."""
    return any(run.pending for run in runs)


class _Progress:
    """How far one request's loop has come: what its model is offered, its conversation so
    far, the calls run of each use of a server."""

    def __init__(self, loop: ToolLoop, request: GenerationRequest) -> None:
        self.loop, self.request = loop, request
        self.messages = list(request.messages)
        self.offer = Offer(())
        self.uses = {use.name: use for use in request.uses}
        self.used: dict = {}  # calls run of each use, by its name

    def begin(self) -> list:
        """List the servers' tools (a server that cannot is a failure of the request), and
        run the calls the client approved or refused: what the client is told first (the
        time the servers take is theirs, not the proxy's)."""
        toolbox = self.loop.toolbox
        with waiting(self.request.caller.measure):
            listed = [(use, toolbox.list_tools(use.server)) for use in self.request.uses]
        self.offer = offer(listed, self.request.tools, self.loop.may_run)
        told: list = [ToolsListed(listing) for listing in self.offer.listings]
        approved = [self._approved(approval) for approval in self.request.approvals]
        if approved:
            calls = [call for call, _ in approved]
            with waiting(self.request.caller.measure):
                ran = [self._run_approved(call, approval) for call, approval in approved]
            self.went_on("", "", calls, ran)
            told += [ToolRan(run) for run in ran]
        return told

    def turn(self, last: bool) -> GenerationRequest:
        """The request of the next turn: the conversation so far, and the hosted tools
        offered unless it is the ``last``."""
        tools = self.request.tools if last else (*self.request.tools, *self.offer.tools)
        return replace(self.request, messages=tuple(self.messages), tools=tuple(tools))

    def run(self, calls: Sequence[ToolCall], last: bool) -> list:
        """Each call run, or held for approval; none on the ``last`` turn, which was not
        offered the hosted tools (a model may call one all the same). The runs' time is
        the tools' own, not the proxy's."""
        if last:
            return [
                replace(
                    self._asked(call),
                    error="not run: the model's turns were used up",
                    code=TURNS_USED,
                )
                for call in calls
            ]
        with waiting(self.request.caller.measure):
            return [self._run(call) for call in calls]

    def gone(self) -> bool:
        return self.request.caller.gone()

    def went_on(self, text: str, reasoning: str, calls: Sequence, runs: Sequence) -> None:
        """The turn's text and calls, and the runs' results, added to the conversation."""
        calls = [
            ToolCall(run.id, call.name, call.arguments)
            for call, run in zip(calls, runs, strict=True)
        ]
        self.messages.append(
            Message("assistant", text, tool_calls=tuple(calls), reasoning=reasoning)
        )
        for run in runs:
            self.messages.append(Message("tool", _result(run), tool_call_id=run.id))

    def _asked(self, call: ToolCall) -> ToolRun:
        """The run of ``call``, as the model asked for it."""
        offered = self.offer.by_name[call.name]
        use = offered.use
        return ToolRun(
            call.id or _new_id("call"), use.name, offered.tool, call.arguments, kind=use.kind
        )

    def _run(self, call: ToolCall) -> ToolRun:
        run = self._asked(call)
        use = self.offer.by_name[call.name].use
        if use.needs_approval(run.tool):
            return replace(run, pending=True, approval_id=_new_id("mcpr"))
        used = self.used[use.name] = self.used.get(use.name, 0) + 1
        if use.max_uses is not None and used > use.max_uses:
            return replace(
                run,
                error=f"this request may call the tools of {use.name!r} {use.max_uses} times",
                code=MAX_USES,
            )
        return self._called(run, use.server)

    def _approved(self, approval: Approval) -> tuple:
        """The call an approval is of, as the model made it."""
        use = self.uses.get(approval.label)
        name = next(
            (
                offered.name
                for offered in self.offer.by_name.values()
                if offered.use is use and offered.tool == approval.tool
            ),
            approval.tool,
        )
        return ToolCall(_new_id("call"), name, approval.arguments), approval

    def _run_approved(self, call: ToolCall, approval: Approval) -> ToolRun:
        use = self.uses.get(approval.label)
        run = ToolRun(
            call.id,
            approval.label,
            approval.tool,
            approval.arguments,
            kind=use.kind if use is not None else "mcp",
            approval_id=approval.id,
        )
        if not approval.approve:
            reason = f": {approval.reason}" if approval.reason else ""
            return replace(run, error=f"the user did not approve this call{reason}")
        if use is None or not self.offer.is_offered(call.name):
            return replace(run, error=f"no tool {approval.tool!r} of {approval.label!r} is offered")
        return self._called(run, use.server)

    def _called(self, run: ToolRun, server: str) -> ToolRun:
        """``run`` as the tool answered it (a failure is the model's to read), kept for the
        inspector when the request's model side is."""
        began = perf_counter()
        done = self._answered(run, server)
        side = self.request.caller.side
        if side is not None:
            side.ran(
                server, run.tool, run.arguments, done.output, done.error, perf_counter() - began
            )
        return done

    def _answered(self, run: ToolRun, server: str) -> ToolRun:
        try:
            arguments = json.loads(run.arguments or "{}")
        except ValueError:
            return replace(run, error="the arguments are not valid JSON")
        try:
            result = self.loop.toolbox.call(server, run.tool, arguments)
        except ToolError as exc:
            return replace(run, error=exc.message)
        if result.is_error:
            return replace(run, error=result.text or "the tool failed")
        return replace(run, output=result.text, sources=result.sources, truncated=result.truncated)


def _result(run: ToolRun) -> str:
    """A run's result as the model reads it: told where the gateway cut it, so that the
    model does not take a part for the whole."""
    if run.error:
        return f"Error: {run.error}"
    if run.truncated:
        kept = len(run.output.encode("utf-8"))
        return f"{run.output}\n[cut: the gateway kept the first {kept} bytes of this result]"
    return run.output


def _new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(12).hex()}"
