"""The tool loop: a request whose model may call hosted tools (its ``hosted`` servers) runs
turn after turn on the router; each call the model makes to one of those tools is run by
the gateway (or left pending the client's approval) and its result put in the conversation for
the next turn. The loop ends when the model answers in text, calls a tool of the client's
own, waits for an approval, or has used its turns: the last turn is offered no hosted tool,
so it answers.

What the client sees is one answer: the text of every turn, the listings and runs
(:class:`~proxy.core.events.ToolsListed`, :class:`~proxy.core.events.ToolRan`) where they
happened, and the usage of every turn added up. One loop drives both ways of answering: a
whole answer's turns are whole, a stream's pass each turn's text on as it comes, keep a
hosted call's pieces back, and keep the client company while a tool runs.

The calls themselves (what is offered, approvals, each run) are :mod:`proxy.tools.toolcalls`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Optional, Sequence, Union

from proxy.core.answers import Chunk, Completion, Served, Spent, Usage, assembled
from proxy.core.caller import UNTRACED
from proxy.core.errors import ProxyError
from proxy.core.events import WAITING, ToolRan, ToolsListed
from proxy.core.meanwhile import WAITING_EVERY, Helpers, meanwhile
from proxy.core.router import Generator
from proxy.core.target import Target
from proxy.core.tooluse import TOOL_TURNS
from proxy.core.types import GenerationRequest, amended
from proxy.tools.offer import Offer
from proxy.tools.toolbox import Toolbox
from proxy.tools.toolcalls import ToolCalls

BETWEEN = "\n\n"  # between the texts of two turns


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
    served: Optional[Served] = None  # who made the turn, where known


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
        helpers: Optional[Helpers] = None,
    ) -> None:
        """``helpers``: the threads a hosted tool runs in while the stream says it waits (the
        app's; by default, helpers of its own)."""
        self.router, self.toolbox, self.may_run, self.turns = router, toolbox, may_run, turns
        self.helpers = helpers or Helpers()

    def starting(self, target: Target) -> bool:
        return self.router.starting(target)

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
            except ProxyError as exc:  # the turns that ended are charged all the same
                exc.spent = tuple(event for event in told if type(event) is Spent)
                raise
        spent = tuple(event for event in told if type(event) is Spent)
        runs = tuple(
            event.run if type(event) is ToolRan else event.listing
            for event in told
            if type(event) in (ToolRan, ToolsListed)
        )
        return amended(
            said.ended,
            text=BETWEEN.join(texts),
            tool_calls=said.client,
            finish_reason=_ended(said.ended.finish_reason, said.hosted, said.client),
            usage=usage,
            runs=runs,
            spent=spent,
        )

    def stream(self, request: GenerationRequest) -> Iterator:
        """The answer's chunks, turn after turn, each run told after the text that led to
        it; the last chunk with every turn's usage."""
        ended = yield from self._turns(request, _Streamed(self.router, self.helpers))
        if ended is not None:
            said, _, usage = ended
            yield amended(
                said.ended,
                usage=usage,
                finish_reason=_ended(said.ended.finish_reason, said.hosted, said.client),
            )

    def _turns(self, request: GenerationRequest, way: "_Whole") -> Iterator:
        """Every turn of ``request``, each taken the ``way`` the client is answered: yields
        what the client is told as it happens; returns ``(the last turn's _Said, every
        turn's text, their usage)``, or ``None`` where a turn's stream ended without a
        finish."""
        progress = ToolCalls(self.toolbox, self.may_run, request, self.turns)
        yield from progress.begin()
        texts: list = []
        usage = Usage()
        trace = request.caller.trace
        for turn in range(self.turns):
            last = turn == self.turns - 1
            # the turn's span: its model's attempt, then the tools it called
            traced = (
                UNTRACED
                if trace is None
                else trace.span("turn", attributes={"oai_proxy.turn": turn + 1})
            )
            with traced:
                said = yield from way.turn(
                    progress.turn(last), progress.offer, bool(texts), turn > 0
                )
                if said is None:
                    return None
                made = said.ended.usage or Usage()
                usage += made
                yield Spent(made, said.served)  # each turn charged to its model as it ends
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
        return _Said(
            completion.text, completion.reasoning, hosted, client, completion, completion.served
        )

    def run(self, work: Callable[[], list]) -> Iterator:
        yield from ()
        return work()


class _Streamed:
    """A stream's way: each turn's chunks as the client gets them (its hosted calls' pieces
    kept back), and the client kept company while a tool runs (in a thread of ``helpers``)."""

    def __init__(self, router: Generator, helpers: Helpers) -> None:
        self.router, self.helpers = router, helpers

    def turn(
        self, request: GenerationRequest, offered: Offer, wrote: bool, later: bool
    ) -> Iterator:
        """The turn's chunks, its last one's words too; ``None`` where it ended without a
        finish (as the backend told it)."""
        turn = _Turn()
        served = None
        chunks = self.router.stream(request)
        try:
            for chunk in chunks:
                if type(chunk) is not Chunk:  # who answered, the upstream's lines: as they come
                    if type(chunk) is Served:
                        served = chunk
                    yield chunk
                    continue
                chunk = turn.read(chunk, offered, wrote, later)
                if chunk.finish_reason is None:
                    yield chunk
                    continue
                words = amended(chunk, finish_reason=None, usage=None, stop_sequence=None)
                if words.text or words.reasoning or words.tool_calls or words.logprobs:
                    yield words
                ended = amended(chunk, text="", reasoning="", tool_calls=(), logprobs=())
                hosted = assembled(turn.hosted_pieces)
                return _Said(turn.text, turn.reasoning, hosted, turn.client, ended, served)
        finally:
            chunks.close()
        return None

    def run(self, work: Callable[[], list]) -> Iterator:
        return meanwhile(work, WAITING, self.helpers, patience=WAITING_EVERY, every=WAITING_EVERY)


class _Turn:
    """What one turn of a stream wrote: its text and thoughts, the pieces of its hosted
    calls (kept back), and its calls of the client's tools."""

    def __init__(self) -> None:
        self.texts: list = []
        self.thoughts: list = []
        self.hosted_pieces: list = []
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
            chunk = self._keep_back(chunk, offered)
        if later and chunk.prompt_count is not None:
            chunk = amended(chunk, prompt_count=None)
        if chunk.text:
            first = not self.texts
            self.texts.append(chunk.text)
            if first and wrote:
                chunk = amended(chunk, text=BETWEEN + chunk.text)
        if chunk.reasoning:
            self.thoughts.append(chunk.reasoning)
        return chunk

    def _keep_back(self, chunk: Chunk, offered: Offer) -> Chunk:
        passed = []
        for piece in chunk.tool_calls:
            if piece.name is not None and offered.is_offered(piece.name):
                self.hosted.add(piece.index)
            if piece.index in self.hosted:
                self.hosted_pieces.append(piece)
            else:
                passed.append(piece)
        self.passed += passed
        return amended(chunk, tool_calls=tuple(passed))


def _ended(reason: str, hosted: Sequence, client: Sequence) -> str:
    """Why the answer ended: the client's calls, else the model's own reason, but a turn
    that called hosted tools only (left pending approval, or the client gone) stopped."""
    if client:
        return "tool_calls"
    return "stop" if hosted else reason


def _waits(runs: Sequence) -> bool:
    """Whether a run waits for the client's approval."""
    return any(run.pending for run in runs)
