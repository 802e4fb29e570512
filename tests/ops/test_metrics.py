"""Metrics and the overhead header, through the test client over a fake fleet."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.app import create_app
from proxy.config import Settings
from tests.fakes.servercpp import FakeServerCpp

CHAT = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}


def samples(text: str) -> dict:
    """``{(name, sorted labels): value}`` of a scrape."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scrape: dict, name: str, **labels) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def fake():
    with FakeServerCpp("llamacpp", n_slots=2) as server:
        yield server


@pytest.fixture
def proxy_over(tmp_path):
    def make(fake, **settings):
        models = tmp_path / "models.toml"
        models.write_text(f'[models.tiny]\naliases = ["gpt-4"]\nupstreams = ["{fake.url}"]\n')
        return create_app(Settings(config=str(models), **settings)).test_client()
    return make


def chat(client, **body) -> int:
    """Send a chat and close the answer, as a server does once the last byte is out."""
    with client.post("/v1/chat/completions", json={**CHAT, **body}) as response:
        return response.status_code


def test_requests_tokens_and_upstreams_are_counted(fake, proxy_over):
    client = proxy_over(fake)
    assert [chat(client), chat(client, stream=True), chat(client, model="gpt-4"),
            chat(client, model="nope")] == [200, 200, 200, 404]
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    route = "/v1/chat/completions"
    assert value(scrape, "oai_proxy_requests_total", route=route, model="tiny", status="200",
                 key="") == 3
    assert value(scrape, "oai_proxy_requests_total", route=route, model="unknown",
                 status="404", key="") == 1
    assert value(scrape, "oai_proxy_tokens_total", model="tiny", kind="completion") > 0
    assert value(scrape, "oai_proxy_tokens_total", model="tiny", kind="prompt") > 0
    assert value(scrape, "oai_proxy_time_to_first_token_seconds_count", model="tiny") == 1
    assert value(scrape, "oai_proxy_request_duration_seconds_count", route=route,
                 model="tiny") == 3
    assert value(scrape, "oai_proxy_queue_wait_seconds_count", model="tiny") == 3
    assert value(scrape, "oai_proxy_upstream_up", model="tiny", upstream=fake.url) == 1
    assert value(scrape, "oai_proxy_slots_total", model="tiny", upstream=fake.url) == 2
    assert value(scrape, "oai_proxy_slots_busy", model="tiny", upstream=fake.url) == 0
    assert value(scrape, "oai_proxy_overhead_seconds_count", route=route) == 4


def test_every_answer_says_the_proxys_own_time(fake, proxy_over):
    client = proxy_over(fake)
    for response in (client.post("/v1/chat/completions", json=CHAT),
                     client.post("/v1/chat/completions", json={**CHAT, "stream": True}),
                     client.post("/v1/chat/completions", json={"messages": 1}),
                     client.get("/health")):
        overhead = float(response.headers["x-oai-proxy-overhead-ms"])
        assert 0 <= overhead < 1000


def test_client_free_text_never_becomes_a_label(fake, proxy_over):
    client = proxy_over(fake)
    for name in ("a", "b", "c"):
        chat(client, model=name)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model="a"' not in text and 'model="unknown"' in text


@pytest.mark.parametrize("key, status", [(None, 401), ("wrong", 401), ("metrics", 200),
                                         ("admin", 200)])
def test_a_metrics_key_guards_the_scrape(fake, proxy_over, key, status):
    client = proxy_over(fake, metrics_key="metrics", admin_key="admin", api_key=("client",))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert "metrics" not in response.get_data(as_text=True)


def test_without_a_metrics_key_the_scrape_is_public_even_with_client_keys(fake, proxy_over):
    response = proxy_over(fake, api_key=("client",)).get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")


def test_metrics_off_keeps_none_and_still_says_the_overhead(fake, proxy_over):
    client = proxy_over(fake, metrics="off")
    assert chat(client) == 200
    assert "x-oai-proxy-overhead-ms" in client.get("/health").headers
    assert client.get("/metrics").status_code == 404
    assert client.get("/status").json["models"][0]["completion_tokens"] == 0
