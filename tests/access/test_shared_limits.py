"""Two proxy processes, one Redis: one budget per key. Without Redis, one budget each."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

KEYS = '[[keys]]\nname = "team"\nkey = "sk-team"\nrequests_per_minute = 6\n'


def statuses(proxies, count: int) -> list:
    answers = []
    for turn in range(count):  # the processes take turns
        proxy = proxies[turn % len(proxies)]
        answers.append(
            requests.post(
                proxy.url + "/v1/completions",
                timeout=10,
                headers={"Authorization": "Bearer sk-team", "Connection": "close"},
                json={"prompt": "hi", "max_tokens": 2},
            ).status_code
        )
    return answers


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "per-process"])
def test_two_proxies_share_one_limit_through_redis(tmp_path, redis_url, redis_client, shared):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    args = ["--keys", str(keys), *(["--redis-url", redis_url] if shared else [])]
    with ExitStack() as stack:
        fake = stack.enter_context(FakeServerCpp("llamacpp", n_slots=4))
        proxies = [
            stack.enter_context(ProxyProcess(fake.url, tmp_path / f"{how}.log", how=how, args=args))
            for how in ("waitress", "gunicorn")
        ]
        if time.time() % 60 > 40:  # the 14 requests fall in one minute, whose count they share
            time.sleep(60.5 - time.time() % 60)
        answers = statuses(proxies, 14)
    if shared:
        assert answers.count(200) == 6 and answers.count(429) == 8
        assert sorted(redis_client.keys("oai-proxy:usage:*")) == [
            b"oai-proxy:usage:pairs",
            b"oai-proxy:usage:team\x1fdefault",
        ]
    else:  # each process (and each gunicorn worker) counts for itself
        assert answers.count(200) >= 12
    for proxy in proxies:
        assert "sk-team" not in proxy.log()
