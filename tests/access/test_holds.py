"""Holds on a key's budgets while its requests run: what a request holds, when it is refused,
and both stores adding, counting and letting go of holds atomically, through one contract."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from proxy.access import holds
from proxy.access.budgets import Budgets, Standing
from proxy.access.holds import AROUND_MESSAGE, AROUND_REQUEST, PER_IMAGE
from proxy.access.keyring import KeySpec
from proxy.access.usage import Charge, Hold, RedisUsage, SqliteUsage
from proxy.config.price import Price
from proxy.core.audio import Transcription, Upload
from proxy.core.errors import InvalidRequestError, QuotaExceededError
from proxy.core.pictures import Drawing
from proxy.core.types import GenerationRequest, Image, Message, Sound, ToolCall, Verbatim, amended
from tests.core.test_audiofile import wav

NOON = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
LEFT = {"day": 12 * 3600, "month": 12 * 3600}
TOKENS = KeySpec("team", b"s", tokens_per_day=1000)
MONEY = KeySpec("team", b"s", usd_per_day=0.001)  # 1,000 micro-dollars
BOTH = KeySpec("team", b"s", tokens_per_day=1000, usd_per_month=0.001)
PRICE = Price(10, 20)  # 10 micro-dollars a prompt token, 20 an answer's


def standing(key: KeySpec, spent: dict, held: dict = None) -> Standing:
    return Standing(key, spent, LEFT, NOON, held or {})


@pytest.mark.parametrize(
    "key, spent, held, price, prompt, output, amounts",
    [
        (TOKENS, {"day": 100}, {}, None, 50, 200, (250, 0)),
        (TOKENS, {"day": 100}, {"tokens": 650}, None, 50, 200, (250, 0)),  # fits to the token
        (KeySpec("team", b"s", tokens_per_day=10_000), {"day": 0}, {}, None, 50, None,
         (50 + holds.UNBOUNDED_OUTPUT, 0)),
        (KeySpec("team", b"s", tokens_per_day=10_000), {"day": 9_000}, {"tokens": 600}, None,
         50, None, (400, 0)),  # no output bound: what is left, up to UNBOUNDED_OUTPUT
        (MONEY, {"usd_day": 0}, {}, PRICE, 10, 45, (0, 1000)),  # 100 + 900 micro-dollars
        (MONEY, {"usd_day": 0}, {}, None, 10_000, 10_000, (0, 0)),  # no price, no money held
        (MONEY, {"usd_day": 300}, {}, PRICE, 10, None, (0, 700)),  # 100 + 30 × 20
        (BOTH, {"day": 0, "usd_month": 0}, {}, PRICE, 10, 20, (30, 500)),
    ],
    ids=["fits", "fits-beside-holds", "unbounded", "unbounded-takes-what-is-left", "money",
         "no-price", "money-unbounded", "tokens-and-money"],
)  # fmt: skip
def test_a_request_holds_its_prompt_and_output_bounds(
    key, spent, held, price, prompt, output, amounts
):
    made = holds.needed(standing(key, spent, held), price, prompt, output, NOON + 900)
    assert (made.tokens, made.micro_usd) == amounts
    assert made.key == "team" and made.until == NOON + 900
    sizes = {"tokens": key.tokens_per_day, "usd": 1000}
    assert made.limits == tuple(
        (f"{name}:{'2026-11-30' if 'day' in name else '2026-11'}",
         "tokens" if name == "day" else "usd", sizes["tokens" if name == "day" else "usd"])
        for name in spent
    )  # fmt: skip


@pytest.mark.parametrize(
    "key, spent, held, price, prompt, output, words, retry_after",
    [
        (TOKENS, {"day": 100}, {"tokens": 651}, None, 50, 200,
         "has 249 of its 1000 tokens of the day left, 651 more held by requests in flight; "
         "this request may take 250 tokens (a prompt of at most 50 tokens and an answer of at "
         "most 200 tokens): "
         "retry once those end", holds.IN_FLIGHT_RETRY_AFTER),
        (TOKENS, {"day": 900}, {}, None, 50, 200,
         "has 100 of its 1000 tokens of the day left; this request may take 250 tokens",
         12 * 3600),  # it cannot fit before the day turns
        (TOKENS, {"day": 980}, {}, None, 50, None,
         "has 20 of its 1000 tokens of the day left; this request may take 51 tokens (a "
         "prompt of at most 50 tokens and no max_tokens): ask for less",
         12 * 3600),  # not even its prompt fits
        (MONEY, {"usd_day": 0}, {}, PRICE, 10, 46,
         "has 0.001 of its 0.001 US dollars of the day left; this request may take 0.00102 "
         "US dollars", 12 * 3600),
        (BOTH, {"day": 0, "usd_month": 600}, {"usd": 300}, PRICE, 10, 10,
         "has 0.0001 of its 0.001 US dollars of the month left, 0.0003 more held by requests "
         "in flight", holds.IN_FLIGHT_RETRY_AFTER),
    ],
    ids=["held-by-others", "too-much", "prompt-too-long", "money", "money-held"],
)  # fmt: skip
def test_a_request_that_does_not_fit_is_refused_naming_the_budget_and_its_need(
    key, spent, held, price, prompt, output, words, retry_after
):
    with pytest.raises(QuotaExceededError) as refused:
        holds.needed(standing(key, spent, held), price, prompt, output, NOON + 900)
    assert f"the key 'team' {words}" in str(refused.value)
    assert refused.value.retry_after == retry_after
    assert refused.value.headers == standing(key, spent, held).headers()


DRAWN = Price(image=0.0004, speech_character=0.000001)  # 400 micro-dollars a picture


@pytest.mark.parametrize(
    "counts, micro_usd",
    [({"pictures": 2}, 800), ({"speech_characters": 900}, 900), ({}, 0)],
    ids=["pictures", "characters", "none"],
)
def test_media_hold_their_price_by_the_unit(counts, micro_usd):
    made = holds.needed(standing(MONEY, {"usd_day": 0}), DRAWN, 0, 0, NOON + 900, counts)
    assert made.micro_usd == micro_usd


def test_media_that_do_not_fit_are_refused_naming_them():
    with pytest.raises(QuotaExceededError) as refused:
        holds.needed(standing(MONEY, {"usd_day": 0}), DRAWN, 0, 0, NOON + 900, {"pictures": 3})
    assert "may take 0.0012 US dollars (a prompt of at most 0 tokens and an answer of at most " \
           "0 tokens, 3 pictures)" in str(refused.value)  # fmt: skip


def test_a_drawing_holds_its_prompt_its_uploads_and_a_pictures_most_for_each():
    upload = Upload("a.png", "image/png", b"\x89PNG")
    asked = Drawing("m", "edits", {"prompt": "a fox"}, (("image", upload), ("mask", upload)), 3)
    assert holds.drawing_bounds(asked) == (
        AROUND_REQUEST + len("a fox") + 2 * PER_IMAGE,
        3 * holds.PER_PICTURE,
    )


@pytest.mark.parametrize(
    ("pixels", "each"),
    [
        (0, holds.PER_PICTURE),  # no size asked: a picture's most
        (1024 * 1024, holds.PER_PICTURE),
        (1536 * 1536, holds.PER_PICTURE),
        (1536 * 1536 + 1, holds.PER_PICTURE + 1),  # a part of a token counts as one
        (3072 * 3072, 4 * holds.PER_PICTURE),
    ],
)
def test_a_picture_larger_than_the_most_a_picture_counts_holds_in_proportion(pixels, each):
    asked = Drawing("m", "generations", {"prompt": ""}, (), 2, pixels)
    assert holds.drawing_bounds(asked)[1] == 2 * each


def test_a_reloaded_budget_is_held_against_at_its_new_size():
    grown = KeySpec("team", b"s", tokens_per_day=5000)
    made = holds.needed(standing(grown, {"day": 900}), None, 50, 2000, NOON + 900)
    assert made.limits == (("day:2026-11-30", "tokens", 5000),) and made.tokens == 2050


SAY = "héllo"  # 6 bytes
CALL = ToolCall("c1", "read", '{"p":1}')  # 4 + 7 bytes


@pytest.mark.parametrize(
    "request_, bound",
    [
        (GenerationRequest(prompt="hi"), AROUND_REQUEST + 2),
        (GenerationRequest(prompt="def f(", suffix="):", nearby=(), cursor="x"),
         AROUND_REQUEST + 6 + 2 + 1),
        (GenerationRequest(messages=(Message("user", SAY),)), AROUND_REQUEST + AROUND_MESSAGE + 6),
        (GenerationRequest(messages=(
            Message("user", "see", images=(Image("image_url"), Image("image_url"))),
            Message("assistant", "", tool_calls=(CALL,), reasoning="hmm"),
            Message("tool", "ok", name="read"),
        )), AROUND_REQUEST + 3 * AROUND_MESSAGE + 2 * PER_IMAGE + 3 + 11 + 3 + 2 + 4),
        (GenerationRequest(messages=(Message("user", "x"),), tools=({"type": "function"},)),
         AROUND_REQUEST + AROUND_MESSAGE + 1 + len('[{"type": "function"}]')),
        (GenerationRequest(verbatim=Verbatim("anthropic", {"messages": []})),
         AROUND_REQUEST + len('{"messages": []}')),
    ],
    ids=["prompt", "infill", "utf-8", "images-calls-thoughts", "tools", "untranslated"],
)  # fmt: skip
def test_a_prompt_is_bounded_by_its_bytes_and_what_a_template_adds(request_, bound):
    assert holds.prompt_bound(request_) == bound


def test_a_sound_holds_its_windows_and_one_of_untold_length_is_refused_naming_it():
    told = Sound("messages[0].content[0].input_audio.data", 0, "wav", "UklGRg==", tokens=1500)
    request = GenerationRequest(messages=(Message("user", "", sounds=(told,)),))
    assert holds.prompt_bound(request) == AROUND_REQUEST + AROUND_MESSAGE + 1500
    untold = amended(told, audio_format="ogg", tokens=None)
    with pytest.raises(InvalidRequestError) as caught:
        holds.prompt_bound(GenerationRequest(messages=(Message("user", "", sounds=(untold,)),)))
    assert caught.value.param == told.field and "ogg audio" in caught.value.message


@pytest.mark.parametrize(
    "max_tokens, n, longest, output",
    [
        ((10, 20), 1, None, 30),
        ((10, 20), 2, None, 60),
        ((10, None), 1, None, None),  # no bound known for one: none for them all
        ((10, None), 2, 500, 1020),  # one sets none: their model's longest answer
    ],
    ids=["asked", "choices", "unknown", "the-models"],
)
def test_requests_are_bounded_together_each_choice_counted(max_tokens, n, longest, output):
    requests = [GenerationRequest(prompt="hi", max_tokens=b, model="m") for b in max_tokens]
    prompt = n * len(max_tokens) * (AROUND_REQUEST + 2)
    assert holds.bounds(requests, n, lambda: longest) == (prompt, output)


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteUsage(str(tmp_path / "usage.sqlite3"))
    return RedisUsage(request.getfixturevalue("redis_client"))


DAY = ("day:2026-11-30", "tokens", 1000)
USD = ("usd_month:2026-11", "usd", 500)


def test_a_store_adds_a_hold_only_where_it_fits_and_a_charge_lets_it_go(store):
    first = Hold("team", 600, 200, (DAY, USD), NOON + 900)
    assert store.hold(first, NOON) and store.held("team", NOON) == (600, 200)
    assert not store.hold(Hold("team", 401, 0, (DAY,), NOON + 900), NOON)  # 1,001 tokens
    assert not store.hold(Hold("team", 0, 301, (USD,), NOON + 900), NOON)
    second = Hold("team", 400, 300, (DAY, USD), NOON + 900)
    assert store.hold(second, NOON) and store.held("team", NOON) == (1000, 500)
    assert store.held("other", NOON) == (0, 0)
    store.apply([Charge("team", "m", 10, 5, False, (DAY[0],), 15, hold=first.id)])
    assert store.held("team", NOON) == (400, 300)  # let go, and 15 spent instead
    assert store.hold(Hold("team", 585, 0, (DAY,), NOON + 900), NOON)
    assert not store.hold(Hold("team", 1, 0, (DAY,), NOON + 900), NOON)


def test_a_hold_its_charge_never_lets_go_lapses(store):
    assert store.hold(Hold("team", 900, 0, (DAY,), NOON + 900), NOON)
    assert not store.hold(Hold("team", 200, 0, (DAY,), NOON + 1800), NOON + 899)
    assert store.held("team", NOON + 900) == (0, 0)  # its proxy was killed mid-answer
    assert store.hold(Hold("team", 200, 0, (DAY,), NOON + 1800), NOON + 900)
    assert store.held("team", NOON + 900) == (200, 0)


def test_a_charge_replayed_lets_its_hold_go_and_counts_once(store):
    held = Hold("team", 100, 0, (DAY,), NOON + 900)
    assert store.hold(held, NOON)
    charge = Charge("team", "m", 5, 5, False, (DAY[0],), 10, hold=held.id)
    store.apply([charge])
    store.apply([charge])
    assert store.held("team", NOON) == (0, 0) and store.spent("team", [DAY[0]]) == [10]


def test_requests_at_once_hold_no_more_than_the_budget(store):
    """16 threads reserve together: exactly the holds that fit are added, whichever win."""
    made, barrier = [], threading.Barrier(16)

    def hold() -> None:
        barrier.wait()
        made.append(store.hold(Hold("team", 230, 0, (("day:2026-11-30", "tokens", 600),),
                                       NOON + 900), NOON))  # fmt: skip

    threads = [threading.Thread(target=hold) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [False] * 14 + [True] * 2
    assert store.held("team", NOON) == (460, 0)


def test_a_standing_counts_what_is_held(store):
    budgets = Budgets(store, clock=lambda: NOON)
    key = KeySpec("team", b"s", tokens_per_day=1000, usd_per_day=0.001)
    assert store.hold(Hold("team", 300, 400, (DAY,), NOON + 900), NOON)
    now = budgets.standing(key)
    assert now.held == {"tokens": 300, "usd": 400}
    assert now.headers()["x-budget-remaining-tokens-day"] == "700"
    assert now.headers()["x-budget-remaining-usd-day"] == "0.0006"


@pytest.mark.parametrize(
    "texts, around, bound",
    [([], 2, 0), (["hi"], 2, 4), (["héllo", "a"], 2, 6 + 2 + 1 + 2), (["x"], 0, 1)],
)
def test_texts_to_embed_or_rank_are_bounded_by_their_bytes_and_their_marks(texts, around, bound):
    assert holds.texts_bound(texts, around) == bound


@pytest.mark.parametrize(
    "audio, fields, bound",
    [
        (wav(1.0), {}, AROUND_REQUEST + 750),
        (wav(31.0, rate=8000, width=1), {"prompt": "Ada, Grace"}, AROUND_REQUEST + 1500 + 10),
    ],
    ids=["a-window", "two-windows-and-a-prompt"],
)
def test_a_transcription_holds_its_audios_windows_and_its_prompt(audio, fields, bound):
    asked = Transcription("ears", "transcriptions", Upload("a.wav", "", audio), "wav", fields)
    assert holds.transcription_bound(asked) == bound


def test_a_transcription_of_untold_length_is_refused_naming_the_file():
    asked = Transcription("ears", "transcriptions", Upload("a.ogg", "", b"OggS"), "ogg", {})
    with pytest.raises(InvalidRequestError) as caught:
        holds.transcription_bound(asked)
    assert caught.value.param == "file" and "ogg audio" in caught.value.message
