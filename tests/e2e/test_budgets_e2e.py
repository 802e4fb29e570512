"""A key's budgets of tokens and of US dollars per day, counted to the token and to the
micro-dollar by two proxies sharing a real Redis in front of a real llama-server, and enforced
by both once spent."""

from __future__ import annotations

import itertools
from decimal import ROUND_CEILING, Decimal

import pytest
import redis
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

BUDGET = 400
USD_BUDGET = "0.001"  # US dollars a day: 1,000 micro-dollars, a few answers at PRICE
PRICE = (10, 20)  # US dollars per million prompt and completion tokens
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
            ProxyProcess(server.url, logs / "proxy-budgets-2.log", args=args) as second,
        ):
            yield first, second


def chat(proxy: ProxyProcess, key: str, number: int) -> requests.Response:
    body = {"model": "tiny", "max_tokens": 8,
            "messages": [{"role": "user", "content": f"Question {number}?"}]}  # fmt: skip
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
    assert answers >= 2 and spent - last < BUDGET <= spent  # the last one answered crossed it
    error = answer.json()["error"]
    assert error["code"] == "insufficient_quota" and "tokens of the day" in error["message"]
    for proxy in (first, second):
        refused = chat(proxy, "sk-team", 0)
        assert refused.status_code == 429
        assert refused.headers["x-budget-remaining-tokens-day"] == "0"
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
    assert answers >= 2 and spent - last < budget <= spent  # the last one answered crossed it
    error = answer.json()["error"]
    assert error["code"] == "insufficient_quota"
    assert (
        f"the key 'spender' has spent its {USD_BUDGET} US dollars of the day" in (error["message"])
    )
    for proxy in (first, second):
        refused = chat(proxy, "sk-spender", 0)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-budget-remaining-usd-day"] == "0"
    listed = requests.get(
        second.url + "/admin/keys", headers={"Authorization": "Bearer sk-admin"}, timeout=30
    ).json()["keys"]
    (spender,) = [key for key in listed if key["name"] == "spender"]
    assert spender["budgets"]["usd_day"]["spent"] == spent / 1_000_000
    assert spender["budgets"]["usd_day"]["remaining"] == 0
