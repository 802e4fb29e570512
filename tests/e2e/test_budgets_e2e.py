"""A key's budgets of tokens and of US dollars per day, counted to the token and to the
micro-dollar by two proxies (waitress, and gunicorn with two workers) sharing a real Redis in
front of a real llama-server, held by requests in flight so that none is exceeded however many
come at once, and enforced by both."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_CEILING, Decimal

import pytest
import redis
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

BUDGET = 400
USD_BUDGET = "0.004"  # US dollars a day: 4,000 micro-dollars, a few answers at PRICE
PRICE = (10, 20)  # US dollars per million prompt and completion tokens
HELD = 64 + 8 + len("Question 0?")  # the prompt's bound: its bytes and what a template adds
BURST, BURST_USD, AT_ONCE = 600, "0.012", 16
KEYS = f"""
[[keys]]
name = "team"
key = "sk-team"
tokens_per_day = {BUDGET}

[[keys]]
name = "spender"
key = "sk-spender"
usd_per_day = {USD_BUDGET}

[[keys]]
name = "other"
key = "sk-other"

[[keys]]
name = "burst"
key = "sk-burst"
tokens_per_day = {BURST}

[[keys]]
name = "burst-usd"
key = "sk-burst-usd"
usd_per_day = {BURST_USD}
"""
MODELS = """
[models.tiny]
upstreams = ["{url}"]
price = {{ input = {price[0]}, output = {price[1]} }}
"""


@pytest.fixture(scope="module")
def two_proxies(model, logs, redis_url, tmp_path_factory):
    folder = tmp_path_factory.mktemp("budgets")
    (folder / "keys.toml").write_text(KEYS)
    redis.Redis.from_url(redis_url).flushdb()
    args = ["--keys", str(folder / "keys.toml"), "--redis-url", redis_url,
            "--admin-key", "sk-admin", "--config", str(folder / "models.toml")]  # fmt: skip
    with LlamaServer(model, logs / "budgets-server.log", parallel=2) as server:
        (folder / "models.toml").write_text(MODELS.format(url=server.url, price=PRICE))
        with (
            ProxyProcess(server.url, logs / "proxy-budgets-1.log", args=args) as first,
            ProxyProcess(
                server.url, logs / "proxy-budgets-2.log", args=args, how="gunicorn"
            ) as second,
        ):
            yield first, second


def chat(proxy: ProxyProcess, key: str, number: int, max_tokens: int = 8) -> requests.Response:
    body = {"model": "tiny", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"Question {number % 10}?"}]}  # fmt: skip
    return requests.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def test_two_proxies_count_one_budget_to_the_token_and_both_refuse_once_it_is_spent(
    two_proxies, redis_url
):
    first, second = two_proxies
    counted = redis.Redis.from_url(redis_url)

    def charged() -> int:
        return sum(int(counted.get(name)) for name in counted.keys("oai-proxy:budget:team:day:*"))

    spent, answers, last = 0, 0, 0
    for number, proxy in zip(itertools.count(), itertools.cycle(two_proxies)):
        answer = chat(proxy, "sk-team", number)
        if answer.status_code == 429:
            break
        assert answer.status_code == 200, answer.text
        # as it came in: what both proxies had charged
        assert int(answer.headers["x-budget-remaining-tokens-day"]) == BUDGET - spent
        last = answer.json()["usage"]["total_tokens"]
        spent += last
        answers += 1
        wait_for(lambda total=spent: charged() == total, "the answer charged, to the token")
    assert answers >= 2 and spent <= BUDGET < spent + HELD + 8  # the next would not fit
    error = answer.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert (
        f"has {BUDGET - spent} of its {BUDGET} tokens of the day left; this request may take "
        f"{HELD + 8} tokens" in error["message"]
    )
    for proxy in (first, second):
        refused = chat(proxy, "sk-team", 0)
        assert refused.status_code == 429
        assert refused.headers["x-budget-remaining-tokens-day"] == str(BUDGET - spent)
        assert chat(proxy, "sk-other", 0).status_code == 200  # a key without a budget goes on
    listed = requests.get(
        second.url + "/admin/keys", headers={"Authorization": "Bearer sk-admin"}, timeout=30
    ).json()["keys"]
    assert listed[0]["budgets"]["day"]["spent"] == spent


def test_two_proxies_count_one_money_budget_to_the_micro_dollar_at_the_models_price(
    two_proxies, redis_url
):
    first, second = two_proxies
    counted = redis.Redis.from_url(redis_url)
    budget = int(Decimal(USD_BUDGET) * 1_000_000)

    def charged() -> int:
        names = counted.keys("oai-proxy:budget:spender:usd_day:*")
        return sum(int(counted.get(name)) for name in names)

    spent, answers, last = 0, 0, 0
    for number, proxy in zip(itertools.count(), itertools.cycle(two_proxies)):
        answer = chat(proxy, "sk-spender", number)
        if answer.status_code == 429:
            break
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-budget-limit-usd-day"] == USD_BUDGET
        # as it came in: what both proxies had charged, in US dollars
        left = Decimal(budget - spent).scaleb(-6).normalize()
        assert answer.headers["x-budget-remaining-usd-day"] == format(left, "f")
        usage = answer.json()["usage"]
        exact = usage["prompt_tokens"] * PRICE[0] + usage["completion_tokens"] * PRICE[1]
        last = int(Decimal(exact).to_integral_value(rounding=ROUND_CEILING))
        spent += last
        answers += 1
        wait_for(lambda total=spent: charged() == total, "the answer charged, to the micro-dollar")
    held = HELD * PRICE[0] + 8 * PRICE[1]  # micro-dollars a request holds
    assert answers >= 2 and spent <= budget < spent + held  # the next would not fit
    error = answer.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert (
        f"of its {USD_BUDGET} US dollars of the day left; this request may take"
        in (error["message"])
    )
    left = format(Decimal(budget - spent).scaleb(-6).normalize(), "f")
    for proxy in (first, second):
        refused = chat(proxy, "sk-spender", 0)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-budget-remaining-usd-day"] == left
    listed = requests.get(
        second.url + "/admin/keys", headers={"Authorization": "Bearer sk-admin"}, timeout=30
    ).json()["keys"]
    (spender,) = [key for key in listed if key["name"] == "spender"]
    assert spender["budgets"]["usd_day"]["spent"] == spent / 1_000_000
    assert spender["budgets"]["usd_day"]["held"] == 0


@pytest.mark.parametrize(
    "key, unit, budget",
    [("burst", "tokens", BURST), ("burst-usd", "usd", int(Decimal(BURST_USD) * 1_000_000))],
)
def test_requests_at_once_through_two_proxies_never_exceed_a_budget(
    two_proxies, redis_url, key, unit, budget
):
    """16 requests of max_tokens 200 at once, half through each proxy: those served hold no
    more than the budget together, the rest are refused before any work, and the key is
    charged what its clients were told, to the token."""
    counted = redis.Redis.from_url(redis_url)
    proxies = [two_proxies[number % 2] for number in range(AT_ONCE)]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(lambda n: chat(proxies[n], f"sk-{key}", n, 200), range(AT_ONCE)))
    served = [answer.json()["usage"] for answer in answers if answer.status_code == 200]
    refused = [answer.json()["error"] for answer in answers if answer.status_code != 200]
    assert served and refused and len(served) + len(refused) == AT_ONCE
    assert {(answer.status_code, error["code"]) for answer, error in zip(
        [a for a in answers if a.status_code != 200], refused, strict=True
    )} == {(429, "insufficient_quota")}  # fmt: skip
    if unit == "tokens":
        told = sum(usage["total_tokens"] for usage in served)
    else:
        told = sum(
            int(Decimal(usage["prompt_tokens"] * PRICE[0] + usage["completion_tokens"] * PRICE[1])
                .to_integral_value(rounding=ROUND_CEILING))
            for usage in served
        )  # fmt: skip
    assert told <= budget  # never past it, whatever the requests in flight
    prefix = f"oai-proxy:budget:{key}:{'day' if unit == 'tokens' else 'usd_day'}:*"

    def charged() -> int:
        return sum(int(counted.get(name)) for name in counted.keys(prefix))

    wait_for(lambda: charged() == told, "what the clients were told, charged to the unit")
    holds = counted.hgetall(f"oai-proxy:holds:{key}:amounts")
    assert holds == {}  # every hold let go as its answer ended
