"""What one request cost: the proxy's own time, its time to first token, its tokens.

The API makes a request's :class:`Measure` as the request comes in and hands it down on the
request's caller (:mod:`proxy.core.caller`): the generation code marks the first token and
the tokens, and every wait is taken off: on an upstream (its slots, its start, its answer),
and on the client (the server writing a piece of a streamed body to it). Its clock runs
while the view runs and while each piece of a streamed body is made.
"""

from __future__ import annotations

from time import perf_counter
from typing import Optional

# what a price reads of an answer beside its tokens, in a measure's counts after them
PRICED = (
    "web_searches", "audio_prompt_tokens", "stored", "pictures", "audio_seconds",
    "speech_characters",
)  # fmt: skip
MEDIA = PRICED[3:]  # what the media routes make, counted by the unit


def priced(**counts: int) -> tuple:
    """The :data:`PRICED` counts named, in their order (0: those not named)."""
    return tuple(counts.get(name, 0) for name in PRICED)


class Measure:
    """One request: seconds in the proxy and the part spent waiting (in a queue for a slot,
    among others), and the tokens it took
    of each model that answered some of it (``tokens``: a model's id, or ``""`` for the
    one asked for, to ``[prompt, completion, cached]`` and the :data:`PRICED` counts), and
    the service tier each was served at where its price names it (``tiers``), and the size
    of the pictures each drew where its price names sizes (``sizes``)."""

    __slots__ = ("began", "spent", "waited", "queued", "first_token", "tokens", "tiers",
                 "sizes", "_since")  # fmt: skip

    def __init__(self) -> None:
        self.began = self._since = perf_counter()
        self.spent = 0.0
        self.waited = 0.0
        self.queued = 0.0  # of the waits, those in an upstream's queue for a slot
        self.first_token: Optional[float] = None  # seconds from the start to the first token
        self.tokens: dict = {}
        self.tiers: dict = {}
        self.sizes: dict = {}

    def mark_first_token(self) -> None:
        """The first generated text is ready to go out."""
        if self.first_token is None:
            self.first_token = perf_counter() - self.began

    def add_tokens(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int,
        model: str = "",
        priced: tuple = (),
        tier: str = "",
        size: str = "",
    ) -> None:
        """Tokens ``model`` took (``""``: the model the request asked for), what else its
        price reads (``priced``: the :data:`PRICED` counts, in their order; none by
        default), the service tier it served them at (``""``: its price's own) and the
        size of the pictures it drew (``""``: none, or its price names no sizes)."""
        added = (prompt_tokens, completion_tokens, cached_tokens, *priced)
        counts = self.tokens.get(model)
        if counts is None:
            counts = self.tokens[model] = [0] * (3 + len(PRICED))
        for at, count in enumerate(added):
            counts[at] += count
        if tier:
            self.tiers[model] = tier
        if size:
            self.sizes[model] = size

    @property
    def prompt_tokens(self) -> int:
        return sum(counts[0] for counts in self.tokens.values())

    @property
    def completion_tokens(self) -> int:
        return sum(counts[1] for counts in self.tokens.values())

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the servers took from their KV caches."""
        return sum(counts[2] for counts in self.tokens.values())

    def pause(self) -> None:
        if self._since is not None:
            self.spent += perf_counter() - self._since
            self._since = None

    def resume(self) -> None:
        self._since = perf_counter()

    @property
    def upstream(self) -> float:
        """Seconds of the waits but those for a slot: on an answer, a server starting, a
        hosted tool (and, in a stream, its client)."""
        return max(self.waited - self.queued, 0.0)

    @property
    def overhead(self) -> float:
        """Seconds of the proxy's own work so far."""
        running = perf_counter() - self._since if self._since is not None else 0.0
        return max(self.spent + running - self.waited, 0.0)


def server_timing(spent: Measure, seconds: float) -> str:
    """``spent`` as the web's ``Server-Timing`` header tells it, in milliseconds: the wait
    for a slot (``queue``), the other waits on what is outside the proxy (``upstream``:
    an answer, a server starting, a hosted tool), the proxy's own time (``proxy``), the
    first token's (``first-token``, where one came) and all of it, ``seconds`` (``total``).
    A browser's developer tools show it; any client can read what the gateway added."""
    figures = [("queue", spent.queued), ("upstream", spent.upstream), ("proxy", spent.overhead)]
    if spent.first_token is not None:
        figures.append(("first-token", spent.first_token))
    figures.append(("total", seconds))
    return ", ".join(f"{name};dur={value * 1000:.3f}" for name, value in figures)


class waiting:
    """Mark the ``with`` block as ``watch``'s waiting on something outside the proxy
    (``None``: nothing is measured).

    A class rather than a generator: every request passes through several of these.
    """

    __slots__ = ("watch", "began")

    def __init__(self, watch: Optional[Measure]) -> None:
        self.watch = watch

    def __enter__(self) -> None:
        self.began = perf_counter()

    def __exit__(self, *exc_info) -> None:
        if self.watch is not None:
            self.watch.waited += perf_counter() - self.began


class queueing(waiting):
    """A :class:`waiting` in an upstream's queue for a slot, counted as such too."""

    __slots__ = ()

    def __exit__(self, *exc_info) -> None:
        if self.watch is not None:
            waited = perf_counter() - self.began
            self.watch.waited += waited
            self.watch.queued += waited
