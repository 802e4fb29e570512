"""Metrics and the overhead header, through the test client over a fake fleet."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.api.observe import scrape_keys
from proxy.app import create_app
from proxy.config.settings import Settings
from proxy.ops import metrics
from proxy.ops.measure import Measure, priced
from proxy.ops.metrics import Metrics
from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.runtimes import runtime_in

CHAT = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
DOWN = "http://127.0.0.1:9"  # nothing listens there
# seconds a slow fake waits for each token: five times the most own time a loaded machine showed
WAIT = 1.0


def samples(text: str) -> dict:
    """``{(name, sorted labels): value}`` of a scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


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
        return create_app(
            Settings.of(config=str(models), **settings), runtime_in(tmp_path)
        ).test_client()

    return make


def chat(client, **body) -> int:
    """Send a chat and close the answer, as a server does once the last byte is out."""
    with client.post("/v1/chat/completions", json={**CHAT, **body}) as response:
        return response.status_code


def test_requests_tokens_and_upstreams_are_counted(fake, proxy_over):
    client = proxy_over(fake)
    assert [
        chat(client),
        chat(client, stream=True),
        chat(client, model="gpt-4"),
        chat(client, model="nope"),
    ] == [200, 200, 200, 404]
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    route = "/v1/chat/completions"
    assert (
        value(scrape, "oai_proxy_requests_total", route=route, model="tiny", status="200", key="")
        == 3
    )
    assert (
        value(
            scrape, "oai_proxy_requests_total", route=route, model="unknown", status="404", key=""
        )
        == 1
    )
    assert value(scrape, "oai_proxy_tokens_total", model="tiny", kind="completion") > 0
    assert value(scrape, "oai_proxy_tokens_total", model="tiny", kind="prompt") > 0
    assert value(scrape, "oai_proxy_time_to_first_token_seconds_count", model="tiny") == 1
    assert value(scrape, "oai_proxy_request_duration_seconds_count", route=route, model="tiny") == 3
    assert value(scrape, "oai_proxy_queue_wait_seconds_count", model="tiny") == 3
    assert value(scrape, "oai_proxy_upstream_up", model="tiny", upstream=fake.url) == 1
    assert value(scrape, "oai_proxy_slots_total", model="tiny", upstream=fake.url) == 2
    assert value(scrape, "oai_proxy_slots_busy", model="tiny", upstream=fake.url) == 0
    assert value(scrape, "oai_proxy_overhead_seconds_count", route=route) == 4


def spent(prompt: int = 0, completion: int = 0, cached: int = 0) -> Measure:
    measure = Measure()
    measure.add_tokens(prompt, completion, cached)
    return measure


def test_the_sums_count_cached_prompt_tokens_and_failed_answers():
    metrics = Metrics()
    route = "/v1/completions"
    metrics.answered(route, "tiny", 200, 0.1, spent(10, 4, 6))
    metrics.answered(route, "tiny", 200, 0.1, spent(10, 4, 6), key="alice")
    metrics.answered(route, "tiny", 502, 0.1, spent())
    metrics.answered("/v1/chat/completions", "tiny", 503, 0.1, spent(), key="alice")
    metrics.answered(route, "tiny", 429, 0.1, spent())  # the client's doing: no error
    summed = metrics.summed()
    tokens = {kind: summed.tokens["tiny", kind] for kind in ("prompt", "completion", "cached")}
    assert tokens == {"prompt": 20, "completion": 8, "cached": 12}
    assert summed.errors == {"tiny": 2}
    scrape = samples(metrics.scrape().decode())
    assert value(scrape, "oai_proxy_tokens_total", model="tiny", kind="cached") == 12


def test_every_answer_says_the_proxys_own_time(fake, proxy_over):
    client = proxy_over(fake)
    for response in (
        client.post("/v1/chat/completions", json=CHAT),
        client.post("/v1/chat/completions", json={**CHAT, "stream": True}),
        client.post("/v1/chat/completions", json={"messages": 1}),
        client.get("/health"),
    ):
        overhead = float(response.headers["x-oai-proxy-overhead-ms"])
        assert 0 <= overhead < 1000


def test_client_free_text_never_becomes_a_label(fake, proxy_over):
    client = proxy_over(fake)
    for name in ("a", "b", "c"):
        chat(client, model=name)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'model="a"' not in text and 'model="unknown"' in text


@pytest.mark.parametrize(
    "key, status", [(None, 401), ("wrong", 401), ("metrics", 200), ("admin", 200)]
)
def test_a_metrics_key_guards_the_scrape(fake, proxy_over, key, status):
    client = proxy_over(fake, metrics_key="metrics", admin_key="admin", api_key=("client",))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert "metrics" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("metrics_key", "admin_key", "keys_required", "opens"),
    [
        pytest.param("", "", False, None, id="no-keys-public"),
        pytest.param("", "adm", False, None, id="no-keys-admin-key-alone-public"),
        pytest.param("met", "", False, ("met",), id="no-keys-metrics-key"),
        pytest.param("met", "adm", False, ("met", "adm"), id="no-keys-both"),
        pytest.param("", "", True, (), id="keys-closed"),
        pytest.param("", "adm", True, ("adm",), id="keys-admin-key"),
        pytest.param("met", "adm", True, ("met", "adm"), id="keys-both"),
    ],
)
def test_which_keys_open_the_scrape(metrics_key, admin_key, keys_required, opens):
    assert scrape_keys(metrics_key, admin_key, keys_required) == opens


def test_without_keys_and_a_metrics_key_the_scrape_is_public(fake, proxy_over):
    response = proxy_over(fake).get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")


def test_with_keys_the_scrape_is_never_public(fake, proxy_over, caplog):
    client = proxy_over(fake, api_key=("client",))
    assert "--metrics-key" in caplog.text  # said at start-up
    for headers in ({}, {"Authorization": "Bearer client"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 403 and refused.json["error"]["code"] == "metrics_key_needed"
        assert "--metrics-key" in refused.json["error"]["message"]
    admin = proxy_over(fake, api_key=("client",), admin_key="admin")
    assert admin.get("/metrics").status_code == 401
    assert admin.get("/metrics", headers={"Authorization": "Bearer client"}).status_code == 401
    assert admin.get("/metrics", headers={"Authorization": "Bearer admin"}).status_code == 200


def test_metrics_off_keeps_none_and_still_says_the_overhead(fake, proxy_over):
    client = proxy_over(fake, metrics="off")
    assert chat(client) == 200
    assert "x-oai-proxy-overhead-ms" in client.get("/health").headers
    assert client.get("/metrics").status_code == 404
    assert client.get("/status").json["models"][0]["completion_tokens"] == 0


def test_a_queue_shows_in_the_metrics_and_on_the_status_page(tmp_path):
    gate = threading.Event()  # a server that refuses beyond its slot: the queue is the proxy's
    with FakeServerCpp("powerinfer", n_slots=1, gate=gate) as fake:
        models = tmp_path / "models.toml"
        models.write_text(f'[models.tiny]\nupstreams = [{{ url = "{fake.url}", slots = 1 }}]\n')
        app = create_app(
            Settings.of(config=str(models), usage_db=str(tmp_path / "u.sqlite3")),
            runtime_in(tmp_path),
        )
        held = app.test_client().post(
            "/v1/chat/completions", buffered=False, json={**CHAT, "stream": True}
        )  # holds the one slot
        waiting = threading.Thread(target=chat, args=(app.test_client(),))
        waiting.start()
        client = app.test_client()
        wait_for(
            lambda: (
                value(
                    samples(client.get("/metrics").get_data(as_text=True)),
                    "oai_proxy_queue_length",
                    model="tiny",
                    upstream=fake.url,
                )
                == 1
            ),
            "a request in the queue",
        )
        scrape = samples(client.get("/metrics").get_data(as_text=True))
        assert value(scrape, "oai_proxy_slots_busy", model="tiny", upstream=fake.url) == 1
        (replica,) = client.get("/status").json["models"][0]["replicas"]
        assert (replica["busy"], replica["queued"], replica["slots"]) == (1, 1, 1)
        gate.set()
        held.get_data()
        held.close()
        waiting.join(10)
        scrape = samples(client.get("/metrics").get_data(as_text=True))
        assert value(scrape, "oai_proxy_queue_length", model="tiny", upstream=fake.url) == 0
        assert value(scrape, "oai_proxy_slots_busy", model="tiny", upstream=fake.url) == 0


def test_a_down_upstream_and_a_stopped_server_say_so(fake, tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(
        f'[models.tiny]\nupstreams = ["{fake.url}"]\n'
        f'[models.down]\nupstreams = ["{DOWN}"]\n'
        f'[models.idle]\ncmd = "sleep 60 ${{PORT}}"\n'
    )
    client = create_app(
        Settings.of(
            config=str(models), log_dir=str(tmp_path), usage_db=str(tmp_path / "u.sqlite3")
        ),
        runtime_in(tmp_path),
    ).test_client()
    assert chat(client, model="down") == 503
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scrape, "oai_proxy_upstream_up", model="down", upstream=DOWN) == 0
    assert value(scrape, "oai_proxy_upstream_up", model="tiny", upstream=fake.url) == 1
    assert value(scrape, "oai_proxy_managed_server_state", model="idle", state="stopped") == 1
    assert value(scrape, "oai_proxy_managed_server_state", model="idle", state="ready") == 0


@pytest.mark.parametrize("stream", [False, True])
def test_the_proxys_own_time_leaves_the_upstreams_out(tmp_path, stream):
    """The fake waits WAIT seconds before each of its 4 tokens but the first (a whole answer:
    before it, for them all), and sends the last only after every wait: with the waits in
    it, the proxy's own time would be the request's whole time nearly; without them, it is at
    most that time less two of the waits, however slow the machine. Not less all three: the
    proxy's work on a chunk (its own time, rightly) goes on while the fake waits for the
    next, and on a busy machine it outlasts the client's own time that made up for it."""
    with FakeServerCpp("llamacpp", token_delay=WAIT) as slow:
        client = create_app(
            Settings.of(llama_api=slow.url, usage_db=str(tmp_path / "u.sqlite3")),
            runtime_in(tmp_path),
        ).test_client()
        began = time.perf_counter()
        with client.post("/v1/chat/completions", json={**CHAT, "stream": stream}) as answer:
            answer.get_data()
            header = float(answer.headers["x-oai-proxy-overhead-ms"])
        waits_left_out = time.perf_counter() - began - 2 * WAIT
        scrape = samples(client.get("/metrics").get_data(as_text=True))
    route = "/v1/chat/completions"
    assert value(scrape, "oai_proxy_tokens_total", model="default", kind="completion") == 4
    assert value(scrape, "oai_proxy_overhead_seconds_count", route=route) == 1
    counted = value(scrape, "oai_proxy_overhead_seconds_sum", route=route)
    assert header / 1000 <= waits_left_out and counted <= waits_left_out


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/messages/count_tokens", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/responses/input_tokens", {"input": "hi"}),
    ],
)
def test_a_token_count_is_counted_under_the_model_it_named(fake, proxy_over, route, body):
    client = proxy_over(fake)
    with client.post(route, json={**body, "model": "nope"}) as response:
        assert response.status_code == 404
    scrape = samples(client.get("/metrics").get_data(as_text=True))
    assert (
        value(
            scrape, "oai_proxy_requests_total", route=route, model="unknown", status="404", key=""
        )
        == 1
    )


def test_tool_calls_errors_and_seconds_are_counted_by_server_and_tool():
    metrics = Metrics()
    metrics.tool_called("fs", "read_file", 0.25)
    metrics.tool_called("fs", "read_file", 0.5, "tool_timeout")
    metrics.tool_called("fs", "", 0.01, "tool_not_found")
    scrape = samples(metrics.scrape().decode())
    name = "oai_proxy_tool_"
    assert value(scrape, name + "calls_total", server="fs", tool="read_file") == 2
    assert value(scrape, name + "calls_total", server="fs", tool="") == 1
    assert (
        value(scrape, name + "errors_total", server="fs", tool="read_file", error="tool_timeout")
        == 1
    )
    assert value(scrape, name + "call_seconds_sum", server="fs", tool="read_file") == 0.75
    assert value(scrape, name + "call_seconds_count", server="fs", tool="read_file") == 2


@pytest.mark.parametrize(
    "caught",
    [struct.error("unpack_from requires a buffer"), ValueError("Expecting value"),
     RuntimeError("Read beyond file size detected")],
)  # fmt: skip
def test_a_workers_file_caught_half_written_is_read_again(caught):
    reads = iter([caught, b"whole"])

    def collect():
        found = next(reads)
        if isinstance(found, Exception):
            raise found
        return found

    assert metrics._read(collect) == b"whole"


def test_a_file_a_worker_left_empty_holds_no_figure(tmp_path):
    """A worker killed between making its file and sizing it leaves it empty for good: the
    scrape and the pages' sums read past it."""
    (tmp_path / "counter_4242.db").touch()
    kept = metrics.Metrics(str(tmp_path))
    assert kept.scrape() == b""
    assert kept.summed() == metrics.Summed({}, {}, {})


def test_the_media_made_are_counted_by_model_and_kind():
    figures = Metrics()
    drawn, spoken = Measure(), Measure()
    drawn.add_tokens(5, 272, 0, priced=priced(pictures=2))
    spoken.add_tokens(0, 0, 0, priced=priced(speech_characters=40))
    figures.answered("/v1/images/generations", "sd", 200, 0.5, drawn)
    figures.answered("/v1/audio/speech", "voice", 200, 0.5, spoken)
    scrape = samples(figures.scrape().decode())
    assert value(scrape, "oai_proxy_media_total", model="sd", kind="pictures") == 2
    assert value(scrape, "oai_proxy_media_total", model="voice", kind="speech_characters") == 40
    assert value(scrape, "oai_proxy_media_total", model="sd", kind="speech_characters") == 0
