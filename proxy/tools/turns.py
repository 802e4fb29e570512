"""The tool loop: a request whose model may call hosted tools (its ``hosted`` servers) runs
turn after turn on the router; each call the model makes to one of those tools is run by
the gateway (or held for the client's approval) and its result put in the conversation for
the next turn. The loop ends when the model answers in text, calls a tool of the client's
own, waits for an approval, or has used its turns: the last turn is offered no hosted tool,
so it answers.

What the client sees is one answer: the text of every turn, the listings and runs
(:class:`~proxy.core.types.ToolListing`, :class:`~proxy.core.types.ToolRun`) where they
happened, and the usage of every turn added up. A stream passes each turn's text on as it
comes; a hosted call's pieces are held, and its run told once it is done.

A tool's output is data: it goes to the model as a tool's result, and the gateway reads
nothing in it.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from dataclasses import replace
from functools import partial
from time import perf_counter
from typing import Callable, Iterator, Optional, Sequence

from proxy.core.errors import ToolError
from proxy.core.generation import KEEPALIVE_EVERY
from proxy.core.router import Router
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
WAITING = Chunk(waiting=True)


def anything(server: str, tool: str) -> bool:
    return True


class Turns:
    """The router's generations, with the hosted tools of each request run between the
    model's turns (what :mod:`proxy.core.generation` asks of a router to generate)."""

    concurrent = False  # choices run one after another: each may run tools

    def __init__(
        self,
        router: Router,
        toolbox: Toolbox,
        *,
        may_run: Callable[[str, str], bool] = anything,
        turns: int = TOOL_TURNS,
    ) -> None:
        self.router, self.toolbox, self.may_run, self.turns = router, toolbox, may_run, turns

    def starting(self, model: Optional[str] = None) -> bool:
        return self.router.starting(model)

    def complete(self, request: GenerationRequest) -> Completion:
        """The answer after every turn, whole."""
        loop = _Loop(self, request)
        runs, usage, texts = list(loop.begin()), Usage(), []
        for turn in range(self.turns):
            last = turn == self.turns - 1
            completion = self.router.complete(loop.turn(last))
            usage += completion.usage
            hosted, client = loop.split(completion.tool_calls)
            if completion.text:
                texts.append(completion.text)
            ran = loop.run(hosted, last) if hosted else []
            runs += ran
            if not hosted or client or last or loop.waiting(ran) or loop.gone():
                return replace(
                    completion,
                    text=BETWEEN.join(texts),
                    tool_calls=tuple(client),
                    finish_reason=_ended(completion.finish_reason, hosted, client),
                    usage=usage,
                    runs=tuple(runs),
                )
            loop.went_on(completion.text, completion.reasoning, hosted, ran)
        raise AssertionError("the last turn ends the loop")  # pragma: no cover

    def stream(self, request: GenerationRequest) -> Iterator[Chunk]:
        """The answer's chunks, turn after turn; a hosted call's run as a chunk of its own
        (``runs``), after the text that led to it."""
        loop = _Loop(self, request)
        told = list(loop.begin())  # to go out with the next chunk
        usage, wrote = Usage(), False
        for turn in range(self.turns):
            turn_, last = _Turn(), turn == self.turns - 1
            chunks = self.router.stream(loop.turn(last))
            try:
                for chunk in chunks:
                    chunk = turn_.read(chunk, loop.offer, wrote, later=turn > 0)
                    if chunk.finish_reason is not None:
                        break
                    if told:
                        chunk, told = replace(chunk, runs=(*told, *chunk.runs)), []
                    yield chunk
                else:
                    return  # the stream ended without a finish: as the backend told it
            finally:
                chunks.close()
            usage += chunk.usage or Usage()
            hosted = assembled(turn_.held)
            wrote = wrote or bool(turn_.text)
            ran = (
                (yield from meanwhile(partial(loop.run, hosted, last), KEEPALIVE_EVERY))
                if hosted
                else []
            )
            if not hosted or turn_.client or last or loop.waiting(ran) or loop.gone():
                yield replace(
                    chunk,
                    runs=(*told, *chunk.runs, *ran),
                    usage=usage,
                    finish_reason=_ended(chunk.finish_reason, hosted, turn_.client),
                )
                return
            if told or chunk.text or chunk.reasoning:  # the turn's last words, not its end
                yield Chunk(text=chunk.text, reasoning=chunk.reasoning, runs=tuple(told))
            told = list(ran)
            loop.went_on(turn_.text, turn_.reasoning, hosted, ran)


def meanwhile(work: Callable[[], list], every: float) -> Iterator[Chunk]:
    """Run ``work`` in a thread of its own, a waiting chunk every ``every`` seconds until it
    is done (the client, and the proxies between, see the stream is alive); its result.
    A client that leaves meanwhile leaves the work to end within its own bounds."""
    done: Future = Future()

    def run() -> None:
        try:
            done.set_result(work())
        except BaseException as exc:  # raised where the stream reads it
            done.set_exception(exc)

    threading.Thread(target=copy_context().run, args=(run,), daemon=True, name="tools").start()
    while True:
        try:
            return done.result(every)
        except FutureTimeout:
            yield WAITING


class _Turn:
    """What one turn of a stream wrote: its text and thoughts, the pieces of its hosted
    calls (held), and whether it called a tool of the client's."""

    def __init__(self) -> None:
        self.texts: list = []
        self.thoughts: list = []
        self.held: list = []
        self.hosted: set = set()  # the indexes of its hosted calls
        self.client = False

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def reasoning(self) -> str:
        return "".join(self.thoughts)

    def read(self, chunk: Chunk, offer: Offer, wrote: bool, later: bool) -> Chunk:
        """``chunk`` as the client gets it: without the hosted calls' pieces, a later
        turn's without the prompt's count, and the first text of a turn after another's
        set apart from it."""
        if chunk.tool_calls:
            chunk = self._held(chunk, offer)
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

    def _held(self, chunk: Chunk, offer: Offer) -> Chunk:
        passed = []
        for piece in chunk.tool_calls:
            if piece.name is not None and offer.hosted(piece.name):
                self.hosted.add(piece.index)
            if piece.index in self.hosted:
                self.held.append(piece)
            else:
                passed.append(piece)
        self.client = self.client or bool(passed)
        return replace(chunk, tool_calls=tuple(passed))


def _ended(reason: str, hosted: Sequence, client: Sequence) -> str:
    """Why the answer ended: the client's calls, else the model's own reason, but a turn
    that called hosted tools only (held for approval, or the client gone) stopped."""
    if client:
        return "tool_calls"
    return "stop" if hosted else reason


class _Loop:
    """One request's turns: what its model is offered, its conversation so far, and the
    running of the calls it makes."""

    def __init__(self, turns: Turns, request: GenerationRequest) -> None:
        self.turns, self.request = turns, request
        self.messages = list(request.messages)
        self.offer = Offer(())
        self.uses = {use.name: use for use in request.hosted}
        self.used: dict = {}  # calls run of each use, by its name

    def begin(self) -> list:
        """List the servers' tools (a server that cannot is a failure of the request), and
        run the calls the client approved or refused: what the client is told first (the
        time the servers take is theirs, not the proxy's)."""
        toolbox = self.turns.toolbox
        with waiting(self.request.caller.measure):
            listed = [(use, toolbox.tools(use.server)) for use in self.request.hosted]
        self.offer = offer(listed, self.request.tools, self.turns.may_run)
        runs: list = list(self.offer.listings)
        approved = [self._approved(approval) for approval in self.request.approvals]
        if approved:
            calls = [call for call, _ in approved]
            with waiting(self.request.caller.measure):
                ran = [self._run_approved(call, approval) for call, approval in approved]
            self.went_on("", "", calls, ran)
            runs += ran
        return runs

    def turn(self, last: bool) -> GenerationRequest:
        """The request of the next turn: the conversation so far, and the hosted tools
        offered unless it is the ``last``."""
        tools = self.request.tools if last else (*self.request.tools, *self.offer.tools)
        return replace(self.request, messages=tuple(self.messages), tools=tuple(tools))

    def split(self, calls: Sequence[ToolCall]) -> tuple:
        """``(hosted, client's)`` calls."""
        hosted = [call for call in calls if self.offer.hosted(call.name)]
        return hosted, [call for call in calls if not self.offer.hosted(call.name)]

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

    def waiting(self, runs: Sequence) -> bool:
        return any(run.pending for run in runs)

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
        if use is None or not self.offer.hosted(call.name):
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
            result = self.turns.toolbox.call(server, run.tool, arguments)
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
