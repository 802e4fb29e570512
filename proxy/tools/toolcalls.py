"""A request's calls of the hosted tools the gateway runs, for the tool loop
(:mod:`proxy.tools.toolloop`): the servers' tools listed and offered, the client's approvals
run first, each call the model makes run (or left pending approval, or refused past its use's
bound) and its result put in the conversation for the next turn.

A tool's output is data: it goes to the model as a tool's result, and the gateway reads
nothing in it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from time import perf_counter
from typing import Callable, Optional, Sequence

from proxy.core.errors import ToolError, ToolNotAllowedError
from proxy.core.events import ToolRan, ToolsListed
from proxy.core.tooluse import Approval, ToolRun
from proxy.core.types import GenerationRequest, Message, ToolCall
from proxy.ops.measure import waiting
from proxy.tools.manager import NO_TRACE
from proxy.tools.offer import Offer, Offered, offer
from proxy.tools.toolbox import Toolbox
from proxy.traces import conventions

MAX_USES = "max_uses_exceeded"  # a run refused: its use's calls were used up
TURNS_USED = "max_turns_exceeded"  # a call not run: the model's last turn made it


class ToolCalls:
    """One request's calls of hosted tools, turn after turn: what its model is offered, the
    conversation they extend, the calls run of each use of a server, each call run or left
    pending the client's approval."""

    def __init__(
        self,
        toolbox: Toolbox,
        may_run: Callable[[str, str], bool],
        request: GenerationRequest,
        most_approvals: int,
    ) -> None:
        """``most_approvals``: the client's approvals one request runs, at the most (the
        loop's turns: an approval stands for a turn the model took before)."""
        self.toolbox, self.may_run, self.request = toolbox, may_run, request
        self.most_approvals = most_approvals
        self.messages = list(request.messages)
        self.offer = Offer(())
        self.uses = {use.name: use for use in request.uses}
        self.key = request.caller.owner  # whose session of a server the calls are in
        self.used: dict = {}  # calls run of each use, by its name

    def begin(self) -> list:
        """List the servers' tools (a server that cannot is a failure of the request), and
        run the calls the client approved or refused: what the client is told first (the
        time the servers take is theirs, not the proxy's)."""
        toolbox = self.toolbox
        with waiting(self.request.caller.measure):
            listed = [
                (use, toolbox.list_tools(use.server, key=self.key)) for use in self.request.uses
            ]
        self.offer = offer(listed, self.request.tools, self.may_run)
        told: list = [ToolsListed(listing) for listing in self.offer.listings]
        approved = [self._approved(approval) for approval in self.request.approvals]
        for _, approval, offered in approved:
            self._check_approved(approval, offered)
        if approved:
            calls = [call for call, _, _ in approved]
            with waiting(self.request.caller.measure):
                ran = [
                    self._run_approved(call, approval, offered, index)
                    for index, (call, approval, offered) in enumerate(approved)
                ]
            self.went_on("", "", calls, ran)
            told += [ToolRan(run) for run in ran]
        return told

    def turn(self, last: bool) -> GenerationRequest:
        """The request of the next turn: the conversation so far, and the hosted tools
        offered unless it is the ``last``."""
        tools = self.request.tools if last else (*self.request.tools, *self.offer.tools)
        return replace(self.request, messages=tuple(self.messages), tools=tuple(tools))

    def run(self, calls: Sequence[ToolCall], last: bool) -> list:
        """Each call run, or left pending approval; none on the ``last`` turn, which was not
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
        """The call an approval is of, as the model made it, and the tool offered this
        request that it names: of the server its label names, under that server's own name
        (``None``: none is, whatever another server offers under the same name)."""
        use = self.uses.get(approval.label)
        offered = next(
            (
                offered
                for offered in self.offer.by_name.values()
                if offered.use is use and offered.tool == approval.tool
            ),
            None,
        )
        name = offered.name if offered is not None else approval.tool
        return ToolCall(_new_id("call"), name, approval.arguments), approval, offered

    def _check_approved(self, approval: Approval, offered: Optional[Offered]) -> None:
        """Refuse the request, before anything of it runs, when the client approved a call
        its key may not have run: of a tool not offered this request under the server its
        label names, or not granted to the key (a 403 naming it)."""
        if not approval.approve:
            return
        if offered is None or not self.may_run(offered.use.server, approval.tool):
            raise ToolNotAllowedError(
                f"the approval {approval.id!r} is of the tool {approval.tool!r} of "
                f"{approval.label!r}, which this request's key may not have run (no such tool "
                "is offered to it there)",
                param="input",
            )

    def _run_approved(
        self, call: ToolCall, approval: Approval, offered: Optional[Offered], index: int
    ) -> ToolRun:
        run = ToolRun(
            call.id,
            approval.label,
            approval.tool,
            approval.arguments,
            kind=offered.use.kind if offered is not None else "mcp",
            approval_id=approval.id,
        )
        if not approval.approve:
            reason = f": {approval.reason}" if approval.reason else ""
            return replace(run, error=f"the user did not approve this call{reason}")
        if index >= self.most_approvals:
            return replace(
                run,
                error=f"not run: one request runs {self.most_approvals} approved calls at most",
                code=TURNS_USED,
            )
        if self.gone():
            return replace(run, error="not run: the client went away")
        return self._called(run, offered.use.server)

    def _called(self, run: ToolRun, server: str) -> ToolRun:
        """``run`` as the tool answered it (a failure is the model's to read), kept for the
        inspector when the request's model side is. The key's grant is checked here, at
        every run, whatever asked for it."""
        if not self.may_run(server, run.tool):
            return replace(
                run,
                error=f"this key may not run the tool {run.tool!r}",
                code=ToolNotAllowedError.code,
            )
        began = perf_counter()
        trace = self.request.caller.trace
        if trace is None:
            done = self._answered(run, server)
        else:
            arguments = run.arguments if trace.content else None
            told = conventions.tool_attributes(run.tool, run.id, server, arguments)
            with trace.span(conventions.tool_name(run.tool), attributes=told):
                done = self._answered(run, server, trace.headers())
                if done.error:
                    trace.fail("tool_error", done.error)
        side = self.request.caller.side
        if side is not None:
            side.ran(
                server, run.tool, run.arguments, done.output, done.error, perf_counter() - began
            )
        return done

    def _answered(self, run: ToolRun, server: str, trace_context=NO_TRACE) -> ToolRun:
        try:
            arguments = json.loads(run.arguments or "{}")
        except ValueError:
            return replace(run, error="the arguments are not valid JSON")
        try:
            result = self.toolbox.call(server, run.tool, arguments, key=self.key,
                                       trace_context=trace_context)  # fmt: skip
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
