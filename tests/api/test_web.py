"""The status page at ``/``: through the test client, and rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from proxy.app import create_app
from proxy.config.catalog import Catalog, ModelSpec
from proxy.config.settings import Settings
from proxy.core.answers import Usage
from proxy.core.errors import UpstreamError
from proxy.fleet.fleet import Fleet
from proxy.fleet.health import Rotation
from proxy.fleet.replica import Replica
from proxy.fleet.servedmodel import ServedModel
from tests.fakes.backend import FakeBackend
from tests.fakes.servercpp import FakeServerCpp
from tests.ops.test_history import Clock
from tests.processes import ProxyProcess
from tests.runtimes import runtime_in

PAGE = {"Accept": "text/html,application/xhtml+xml"}  # as browsers ask

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_page_shows_status_and_routes(make_client):
    page = make_client(api_key=("k",)).get("/", headers=PAGE)  # public, like /health
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'class="status ok"' in html and "/v1/chat/completions" in html
    assert "Authorization: Bearer $KEY" in html and ">k<" not in html


def chromium(url: str, tmp_path, *args: str) -> str:
    assert CHROMIUM, "chromium is not installed (.ci/run installs it)"
    result = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.live
def test_browser_renders_the_page(tmp_path):
    with FakeServerCpp("llamacpp") as fake, ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy:
        dom = chromium(proxy.url + "/", tmp_path, "--dump-dom")
        assert 'id="status" class="status ok">ready<' in dom
        assert "<td>llamacpp</td>" in dom and "/v1/embeddings" in dom
        shot = tmp_path / "page.png"
        chromium(proxy.url + "/", tmp_path, f"--screenshot={shot}", "--window-size=900,900")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        fake.stop()
        dom = chromium(proxy.url + "/", tmp_path, "--dump-dom")
        assert 'class="status down">not ready<' in dom


def keys_file(tmp_path, models=("qwen",)) -> str:
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\nname = "alice"\nkey = "sk-alice"\nmodels = {list(models)!r}\n')
    return str(path)


def test_a_keys_file_alone_requires_a_key_on_the_pages(make_client, tmp_path):
    client = make_client(keys=keys_file(tmp_path))
    assert client.get("/status").get_json()["key_required"] is True
    assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 401
    assert "required" in client.get("/", headers=PAGE).get_data(as_text=True)
    assert 'keybox" hidden' not in client.get("/playground").get_data(as_text=True)


def fleet_page(make_client, tmp_path):
    """Two models on fake replicas named by address, behind alice's key (qwen only) and the
    admin key."""
    specs = (ModelSpec("qwen"), ModelSpec("llama"))
    fleet = Fleet(
        Catalog(specs, "qwen", catch_all=False),
        [
            ServedModel(
                spec,
                (Replica(f"http://10.0.0.9:80{n}", FakeBackend()),),
                Rotation(lambda name: True),
            )
            for n, spec in enumerate(specs)
        ],
    )
    return make_client(fleet, keys=keys_file(tmp_path), admin_key="adm")


@pytest.mark.parametrize(
    ("headers", "viewer", "models"),
    [
        pytest.param({}, "anonymous", [], id="anonymous"),
        pytest.param({"Authorization": "Bearer sk-nobody"}, "anonymous", [], id="unknown-key"),
        pytest.param({"Authorization": "Bearer sk-alice"}, "key", ["qwen"], id="alices-key"),
        pytest.param({"x-api-key": "sk-alice"}, "key", ["qwen"], id="alices-key-as-x-api-key"),
        pytest.param({"Authorization": "Bearer adm"}, "admin", ["qwen", "llama"], id="admin"),
    ],
)
def test_the_status_shows_each_viewer_what_it_may_see(
    make_client, tmp_path, headers, viewer, models
):
    client = fleet_page(make_client, tmp_path)
    status = client.get("/status", headers=headers)
    assert status.status_code == 200 and status.json["viewer"] == viewer
    assert [model["id"] for model in status.json["models"]] == models
    assert ("10.0.0.9" in status.get_data(as_text=True)) == (viewer == "admin")
    page = client.get("/", headers={**PAGE, **headers}).get_data(as_text=True)
    assert ("10.0.0.9" in page) == (viewer == "admin")
    assert ('data-model="llama"' in page) == (viewer == "admin")
    assert ('<tr class="none">' in page) == (not models)


def test_health_gives_its_detail_to_the_admin_alone(make_client, tmp_path):
    client = fleet_page(make_client, tmp_path)
    for headers in ({}, {"Authorization": "Bearer sk-alice"}):
        assert client.get("/health", headers=headers).json == {"status": "ok"}
    detailed = client.get("/health", headers={"Authorization": "Bearer adm"}).json
    assert [model["id"] for model in detailed["models"]] == ["qwen", "llama"]


def test_a_fleet_of_one_names_its_model_and_what_it_does(make_client):
    client = make_client()
    (model,) = client.get("/status").get_json()["models"]
    (listed,) = client.get("/v1/models").get_json()["data"]
    assert model["id"] == "fake-model"
    assert model["capabilities"] == listed["capabilities"] and model["capabilities"]
    named = make_client(model_name="qwen").get("/status").get_json()["models"]
    assert [m["id"] for m in named] == ["qwen"]


def answer(client, body=None) -> int:
    """A completion, closed as a server closes it once sent: only then is it counted."""
    with client.post("/v1/completions", json=body or {"prompt": "the cat"}) as response:
        return response.status_code


def clocked(client) -> Clock:
    """The app's history, on a clock the test moves."""
    clock = Clock()
    client.application.extensions["proxy"].history.clock = clock
    return clock


def test_status_keeps_each_models_last_minutes(make_client, backend):
    backend.usage = Usage(10, 4, cached_tokens=6)
    client = make_client()
    clock = clocked(client)
    assert client.get("/status").get_json()["history"] == {}  # a first snapshot, no sample
    assert [answer(client) for _ in range(3)] == [200, 200, 200]
    assert answer(client, {"prompt": "x", "max_tokens": -1}) == 400  # the client's mistake
    backend.error = UpstreamError("the upstream broke")
    assert answer(client) == 502
    clock.now += 10
    before = time.time()
    status = client.get("/status").get_json()  # a bucket later: the second snapshot
    assert status["history"] == {
        "default": [
            {"t": clock.now, "tokens_per_s": 1.2, "queued": 0, "cache_hit_rate": 0.6, "errors": 1}
        ]
    }
    assert before <= status["time"] <= time.time()  # the server's own clock, as it answered


def test_with_metrics_off_there_is_no_history(make_client):
    client = make_client(metrics="off")
    assert answer(client) == 200
    assert client.get("/status").get_json()["history"] == {}
    page = client.get("/", headers=PAGE).get_data(as_text=True)
    assert 'id="charts-off"' in page and 'id="charts"' not in page


def test_the_slots_cell_is_a_bar_and_its_figures(tmp_path):
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        settings = Settings.of(
            llama_api=fake.url,
            usage_db=str(tmp_path / "u.sqlite3"),
            responses_db=str(tmp_path / "r.sqlite3"),
        )
        client = create_app(settings, runtime_in(tmp_path)).test_client()
        page = client.get("/", headers=PAGE).get_data(as_text=True)
    cell = re.search(r'<td class="num slots">(.*?)</td>', page).group(1)
    assert 'class="slotbar"' in cell and 'class="fill" style="width: 0.0%"' in cell
    assert re.sub(r"<[^>]+>", "", cell) == "0 / 2"  # the text the page showed before


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_a_client_that_asks_for_no_page_is_told_the_api_runs(client, accept):
    headers = {"Accept": accept} if accept else {}
    for method in (client.get, client.head):
        answer = method("/", headers=headers)
        assert answer.status_code == 200 and answer.mimetype == "text/plain"
    assert client.get("/", headers=headers).get_data(as_text=True) == "Ollama is running"


def test_the_admin_sees_each_keys_and_each_processs_part_of_the_line(
    make_client, backend, monkeypatch
):
    keys = {"bob": {"running": 0, "waiting": 1}, "alice": {"running": 2, "waiting": 2}}
    processes = {"gpu-box:812": 1, "gpu-box:811": 1}  # a queue shared by two processes
    line = {"in_flight": 2, "queued": 3, "keys": keys, "processes": processes}
    monkeypatch.setattr(backend, "describe", lambda: line)
    client = make_client(admin_key="admin")
    shown = client.get("/", headers={**PAGE, "Authorization": "Bearer admin"})
    page = shown.get_data(as_text=True)
    cell = re.search(r'<span class="muted keys"[^>]*>(.*?)</span>', page)
    assert cell.group(1) == "alice 2+2 · bob 0+1"
    held = re.search(r'<span class="muted processes"[^>]*>(.*?)</span>', page)
    assert held.group(1) == "gpu-box:811 1 · gpu-box:812 1"
    public = client.get("/", headers=PAGE).get_data(as_text=True)
    assert "alice" not in public and 'class="muted keys"' not in public
    assert "gpu-box" not in public
