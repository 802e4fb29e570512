"""A key's budget of tokens per day, counted to the token by two proxies sharing a real Redis
in front of a real llama-server, and enforced by both once spent."""

from __future__ import annotations

import itertools

import pytest
import redis
import requests

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

BUDGET = 400
KEYS = f"""
[[keys]]
name = "team"
key = "sk-team"
tokens_per_day = {BUDGET}

[[keys]]
name = "other"
key = "sk-other"
"""


@pytest.fixture(scope="module")
def two_proxies(model, logs, redis_url, tmp_path_factory):
    keys = tmp_path_factory.mktemp("budgets") / "keys.toml"
    keys.write_text(KEYS)
    redis.Redis.from_url(redis_url).flushdb()
    args = ["--keys", str(keys), "--redis-url", redis_url, "--admin-key", "sk-admin"]
    with (
        LlamaServer(model, logs / "budgets-server.log", parallel=2) as server,
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
