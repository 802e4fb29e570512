"""What a model's tokens cost (``price`` in the models file), and what of a price a request
asks beyond the model's own. Pure.

A cloud charges some requests at other prices than its model's own, by fields of their
bodies: OpenAI's API serves a ``service_tier`` at that tier's prices and keeps a completion
asked with ``store``. A model with a price names what each of these costs (its tiers, its
stored completions), and a body whose field it does not price is refused by that field's
name before anything is sent: a money budget would otherwise count the model's own price for
an answer the cloud bills at another. A model without a price refuses nothing: it costs the
budgets nothing whatever its upstream bills, so nothing the proxy counts would be wrong.
Audio output, which the cloud bills apart too, is never priced: the gateway answers in text,
so the dialect refuses a body that asks for it (:func:`proxy.core.fields.text_only`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Mapping, Optional

OWN_TIERS = ("auto", "default")  # service tiers served at the model's own price
_MILLION = Decimal(1_000_000)  # micro-dollars in a dollar
# the fields of OpenAI's API that change what an answer costs
PRICED_FIELDS = ("service_tier", "store")


@dataclass(frozen=True)
class Price:
    """What a model's tokens cost, in US dollars per million: its prompt's tokens, those of
    them the server took from its cache (``None``: as the others), and its completion's;
    the prompt's audio (``None``: at ``input``); the searches and the stored completions its
    upstream bills by the thousand (``store`` ``None``: not priced, so refused); what the
    media routes count beside tokens, each by the unit (a picture drawn, a second of audio
    transcribed, a character read aloud), a picture by its size where ``image_sizes`` name
    some; and the service tiers priced apart, each a price of its own."""

    input: float = 0.0
    output: float = 0.0
    cached_input: Optional[float] = None
    web_search: float = 0.0  # US dollars per 1,000 searches the upstream runs itself
    audio_input: Optional[float] = None
    store: Optional[float] = None  # US dollars per 1,000 completions the upstream stores
    image: float = 0.0  # US dollars per picture drawn
    audio_second: float = 0.0  # US dollars per second of audio transcribed
    speech_character: float = 0.0  # US dollars per character read aloud
    tiers: tuple = ()  # (name, Price) of each service tier priced apart
    image_sizes: tuple = ()  # (WIDTHxHEIGHT, US dollars per picture of it); (): by ``image``

    def at(self, tier: object) -> "Price":
        """The price of the service tier ``tier`` (the model's own for one it does not
        name: a tier a request asks for was checked before it was sent)."""
        return next((price for name, price in self.tiers if name == tier), self)

    def sized(self, size: str) -> "Price":
        """The price of pictures of ``size``: of its size where the price names sizes (one
        it names no more: nothing, as a price that names sizes has no ``image`` of its
        own)."""
        if not self.image_sizes:
            return self
        dollars = next((each for named, each in self.image_sizes if named == size), self.image)
        return replace(self, image=dollars, image_sizes=())

    def size_refusal(self, size: object) -> Optional[str]:
        """Why pictures of ``size`` (as a request asks: ``None`` where it asks none) are not
        priced (``None``: they are)."""
        if not self.image_sizes or any(named == size for named, _ in self.image_sizes):
            return None
        named = ", ".join(name for name, _ in self.image_sizes)
        if size is None:
            return f"is required: the model's price names pictures by their size ({named})"
        shown = repr(size) if isinstance(size, str) and len(size) <= 32 else "asked"
        return f"{shown} is not priced: the model's price names {named}"

    def micro_usd(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        web_searches: int = 0,
        audio_prompt_tokens: int = 0,
        stored: int = 0,
        pictures: int = 0,
        audio_seconds: int = 0,
        speech_characters: int = 0,
    ) -> Decimal:
        """The tokens', searches', stored completions' and media's cost in micro-dollars
        (dollars per million times tokens, per thousand times searches, per unit times a
        million for the media's units), exactly: a ``Decimal`` of the
        prices as the models file wrote them, never a float's error. The audio tokens are
        of the prompt's, as OpenAI counts them; none is cached."""
        audio_in = min(max(audio_prompt_tokens, 0), prompt_tokens)
        cached = min(max(cached_tokens, 0), prompt_tokens - audio_in)
        rate = self.input if self.cached_input is None else self.cached_input
        heard = self.input if self.audio_input is None else self.audio_input
        return (
            _exact(self.input) * (prompt_tokens - cached - audio_in)
            + _exact(rate) * cached
            + _exact(heard) * audio_in
            + _exact(self.output) * completion_tokens
            + _exact(self.web_search) * 1000 * web_searches
            + _exact(self.store or 0.0) * 1000 * stored
            + _MILLION
            * (
                _exact(self.image) * pictures
                + _exact(self.audio_second) * audio_seconds
                + _exact(self.speech_character) * speech_characters
            )
        )

    def of(self, *counts: int, **named: int) -> float:
        """The cost in US dollars of what :meth:`micro_usd` counts."""
        return float(self.micro_usd(*counts, **named) / 1_000_000)

    def held(self, terms: "Terms") -> "Price":
        """The price a request asking ``terms`` is held at: its tier's."""
        return self.at(terms.tier)

    def refusal(self, terms: "Terms") -> Optional[tuple]:
        """``(field, why)`` of the first of ``terms`` this price does not cover, or
        ``None``."""
        if terms.tier is not None and all(name != terms.tier for name, _ in self.tiers):
            named = ", ".join(name for name, _ in self.tiers) or "none but its own"
            asked = terms.tier if isinstance(terms.tier, str) and len(terms.tier) <= 32 else ""
            return "service_tier", (
                f"the model's price names no service tier {asked!r} (its tiers: {named})"
            )
        if terms.store and self.at(terms.tier).store is None:
            return "store", "the model's price names no store for stored completions"
        return None


@dataclass(frozen=True)
class Terms:
    """What of its model's price a body sent to a server of OpenAI's API asks beyond the
    model's own: a service tier (``None``: the model's own), a stored completion."""

    tier: object = None
    store: bool = False


def terms(body: Mapping) -> Terms:
    """What ``body`` (as OpenAI's chat completions or Responses API takes it) asks of its
    model's price."""
    tier = body.get("service_tier")
    return Terms(None if tier in OWN_TIERS else tier, body.get("store") is True)


def _exact(dollars: float) -> Decimal:
    """A price as written (0.15, not the float nearest it)."""
    return Decimal(repr(dollars))
