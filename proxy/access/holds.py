"""What a request holds of its key's budgets while it runs: its prompt's tokens and its
output bound, in tokens and at the price of the model it is sent to. Pure.

A request is answered only if what it may spend fits beside what its key has spent and what
its other requests in flight hold: so a budget is never exceeded by more than the one answer
that crossed it, whatever the number of requests in flight, workers or proxies. The prompt
is held at a bound, not an estimate: its texts' UTF-8 bytes (a token is at least one byte:
:mod:`proxy.core.textsize`), a few tokens around each message and image for the chat
template, and a projector's tokens for each window of audio its sounds' headers tell
(:mod:`proxy.core.audiofile`). The output is held at the bound the answer is given: its
``max_tokens``, else the most its model gives an answer that sets none (its default
``max_tokens``, else the context its server gives a conversation; the backends tell each
generation that bound). A request
whose bound is not known yet (its server not reached, a model of another API without a
default) holds :data:`UNBOUNDED_OUTPUT` tokens of output, or what is left if less: it may
be the answer that crosses the budget.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Iterable, Mapping, Optional

from proxy.access import spend
from proxy.access.budgets import NAMED, Standing, period
from proxy.access.usage import Hold
from proxy.config.price import Price
from proxy.core import textsize
from proxy.core.audio import Transcription
from proxy.core.errors import InvalidRequestError, QuotaExceededError
from proxy.core.pictures import Drawing
from proxy.core.types import GenerationRequest

UNBOUNDED_OUTPUT = 4096  # tokens of output a request of no known bound holds, at most
HELD_FOR = 900  # seconds a hold lasts unless its answer's charge lets it go sooner
AROUND_REQUEST = 64  # tokens a template may add to a prompt (a system prompt, a generation cue)
AROUND_MESSAGE = 8  # tokens a template may add around a message (its role, its ends)
PER_IMAGE = 2048  # tokens an image may take (a vision projector's patches)
MEDIA = {"pictures": "pictures", "audio_seconds": "seconds of audio",
         "speech_characters": "characters read aloud"}  # fmt: skip
PER_PICTURE = 8192  # tokens a picture drawn may count (gpt-image-1's largest counts 6,240)
PICTURE_PIXELS = 1536 * 1536  # of a picture PER_PICTURE bounds; a larger one, in proportion
IN_FLIGHT_RETRY_AFTER = 5  # seconds: what holds it back is requests in flight, soon ended


def prompt_bound(request: GenerationRequest) -> int:
    """At least as many tokens as ``request``'s prompt can take, from its size alone (a
    sound's, from the length its header tells); a sound whose length its header does not
    tell is refused, naming it."""
    heard = 0
    for sound in request.sounds:
        if sound.tokens is None:
            raise InvalidRequestError(
                f"'{sound.field}' is {sound.audio_format} audio, whose length cannot be told "
                "before it is heard, so a key with budgets cannot send it: send WAV, FLAC or "
                "MP3",
                param=sound.field,
            )
        heard += sound.tokens
    size = textsize.prompt_size(request)
    around = AROUND_REQUEST + AROUND_MESSAGE * size.messages + PER_IMAGE * size.images
    return around + heard + size.bytes


def transcription_bound(asked: Transcription) -> int:
    """At least as many tokens as ``asked``'s prompt can take: its audio's windows, as its
    header tells them, its ``prompt`` and what the engine's own instruction adds; audio whose
    length its header does not tell is refused, naming the file."""
    if asked.tokens is None:
        raise InvalidRequestError(
            f"the file is {asked.audio_format} audio, whose length cannot be told before it is "
            "heard, so a key with budgets cannot send it: send WAV, FLAC or MP3",
            param="file",
        )
    told = asked.fields.get("prompt")
    return AROUND_REQUEST + asked.tokens + textsize.size(told if isinstance(told, str) else "")


def drawing_bounds(asked: Drawing) -> tuple:
    """``(prompt, output)``: the most tokens a drawing may take, where its engine counts
    them: its prompt's and its uploads' (an image's each), and for each picture it asks for
    :data:`PER_PICTURE`, or more in proportion to its pixels past :data:`PICTURE_PIXELS`."""
    told = asked.fields.get("prompt")
    prompt = AROUND_REQUEST + textsize.size(told if isinstance(told, str) else "")
    each = max(PER_PICTURE, -(-asked.pixels * PER_PICTURE // PICTURE_PIXELS))
    return prompt + PER_IMAGE * len(asked.uploads), each * asked.n


def texts_bound(texts: Iterable[str], around: int) -> int:
    """At least as many tokens as ``texts`` take, each with ``around`` tokens the model adds
    to it (its BOS and EOS, a separator)."""
    return sum(textsize.size(text) + around for text in texts)


def needed(
    standing: Standing,
    price: Optional[Price],
    prompt: int,
    output: Optional[int],
    until: float,
    counts: Mapping[str, int] = MappingProxyType({}),
) -> Hold:
    """What a request of ``prompt`` tokens at most and ``output`` tokens of answer at most
    (``None``: no bound known) holds of ``standing``'s budgets until ``until``, at ``price``
    (the price of the model it is sent to; ``None``: it costs no money), with the media's
    ``counts`` it makes at most (``pictures``, ``audio_seconds``, ``speech_characters``),
    priced by the unit; a 429 naming the budget it does not fit."""
    budgets = [NAMED[name] for name in standing.spent]

    def wants(answer: int) -> dict:
        return {"tokens": prompt + answer, "usd": spend.cost(price, prompt, 0, answer, **counts)}

    def short(answer: int):
        """The first budget a request of ``answer`` tokens does not fit (``None``: none)."""
        wanted = wants(answer)
        return next((b for b in budgets if wanted[b.unit] > _left(standing, b)), None)

    answer = UNBOUNDED_OUTPUT if output is None else output
    if output is None and short(answer) is not None:
        answer = _most(short, UNBOUNDED_OUTPUT)
    budget = short(answer)
    if budget is not None:
        raise _refusal(standing, budget, wants(answer)[budget.unit], prompt, output, counts)
    wanted = wants(answer)
    units = {b.unit for b in budgets}  # a unit the key has no budget of is not held
    limits = tuple(
        (f"{b.name}:{period(standing.now, b.length)[0]}", b.unit, b.size(standing.key))
        for b in budgets
    )
    tokens, micro_usd = (wanted[unit] if unit in units else 0 for unit in ("tokens", "usd"))
    return Hold(standing.key.name, tokens, micro_usd, limits, until)


def _left(standing: Standing, budget) -> int:
    """What a new request may still hold of ``budget``."""
    spent = standing.spent[budget.name] + standing.held.get(budget.unit, 0)
    return budget.size(standing.key) - spent


def _most(short, bound: int) -> int:
    """The most tokens of answer, from 1 to ``bound``, that fit (1 when none does)."""
    low, high = 1, bound
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if short(middle) is None else (low, middle - 1)
    return low


def _refusal(
    standing: Standing,
    budget,
    wanted: int,
    prompt: int,
    output: Optional[int],
    counts: Mapping[str, int],
) -> QuotaExceededError:
    """The 429 of a request that does not fit ``budget``: what is left, what it would hold,
    and when to try again (once the requests in flight end, or once the period turns)."""
    size = budget.size(standing.key)
    spent = standing.spent[budget.name]
    held = standing.held.get(budget.unit, 0)
    asked = f"an answer of at most {output} tokens" if output is not None else "no max_tokens"
    asked += "".join(f", {count} {MEDIA[name]}" for name, count in counts.items() if count)
    in_flight = f", {budget.text(held)} more held by requests in flight" if held else ""
    soon = spent + wanted <= size
    return QuotaExceededError(
        f"the key {standing.key.name!r} has {budget.text(max(size - spent - held, 0))} of its "
        f"{budget.spelled(size)} of the {budget.length} left{in_flight}; this request may "
        f"take {budget.spelled(wanted)} (a prompt of at most {prompt} tokens and {asked}): "
        + ("retry once those end, or ask for less" if soon else "ask for less"),
        retry_after=IN_FLIGHT_RETRY_AFTER if soon else _reset(standing, budget),
        headers=standing.headers(),
    )


def _reset(standing: Standing, budget) -> int:
    return max(1, int(standing.left_seconds[budget.length] + 0.999))


def bounds(
    requests: Iterable[GenerationRequest], n: int, longest: Callable[[], Optional[int]]
) -> tuple:
    """``(prompt, output)``: the tokens ``requests`` (each answered ``n`` times, all of one
    model) may take of prompt and of answer at most: a request's ``max_tokens``, else
    ``longest()``, the most their model gives an answer that sets none (``output`` is
    ``None`` when that is not known)."""
    requests = list(requests)
    prompt = n * sum(prompt_bound(request) for request in requests)
    outputs = [
        request.max_tokens if request.max_tokens is not None else longest() for request in requests
    ]
    if None in outputs:
        return prompt, None
    return prompt, n * sum(outputs)


def busy(standing: Standing) -> QuotaExceededError:
    """The 429 of a request whose key's other requests kept taking what it counted on."""
    return QuotaExceededError(
        f"the key {standing.key.name!r}'s requests in flight hold what is left of its "
        "budgets; retry once they end",
        retry_after=IN_FLIGHT_RETRY_AFTER,
        headers=standing.headers(),
    )
