"""Stored responses seen by every process: gunicorn's workers share the SQLite file, separate
proxies share Redis; a previous_response_id made through one continues through another."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.ops.test_metrics_workers import counters_written
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

KEYS = '[[keys]]\nname = "team"\nkey = "sk-team"\n'
MOST_TURNS = 300


def test_every_gunicorn_worker_continues_any_response(tmp_path):
    folder = tmp_path / "metrics"  # named, so the test can see which workers answered
    folder.mkdir()
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(
            fake.url,
            tmp_path / "proxy.log",
            how="gunicorn",
            env={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
        ) as proxy,
    ):
        previous, turns = None, 0
        # a connection each: the kernel hands them to whichever worker takes it first, so go
        # on until both workers have continued a conversation the other may have begun
        while turns < 6 or counters_written(folder) < 2:
            assert turns < MOST_TURNS, "one worker took every connection"
            client = proxy.sdk(default_headers={"Connection": "close"})
            response = client.responses.create(
                model="m", input=f"turn {turns}", previous_response_id=previous
            )
            assert response.status == "completed" and response.previous_response_id == previous
            previous = response.id
            turns += 1
        assert client.responses.retrieve(previous).previous_response_id is not None


def test_two_proxies_share_responses_through_redis(tmp_path, redis_url, redis_client):
    keys = tmp_path / "keys.toml"
    keys.write_text(KEYS)
    args = ["--keys", str(keys), "--redis-url", redis_url]
    with (
        FakeServerCpp("llamacpp") as fake,
        ProxyProcess(fake.url, tmp_path / "a.log", args=args) as first,
        ProxyProcess(fake.url, tmp_path / "b.log", how="gunicorn", args=args) as second,
    ):
        made = first.sdk(api_key="sk-team").responses.create(model="m", input="hi")
        other = second.sdk(api_key="sk-team")
        follow = other.responses.create(model="m", input="and?", previous_response_id=made.id)
        assert follow.previous_response_id == made.id
        assert other.responses.retrieve(made.id).id == made.id
        first.sdk(api_key="sk-team").responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(made.id)
