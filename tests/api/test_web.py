"""The status page at ``/``: through the test client, and rendered by a real headless Chromium."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fakes.servercpp import FakeServerCpp
from tests.processes import ProxyProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def test_page_shows_status_and_routes(make_client):
    page = make_client(api_key=("k",)).get("/")  # public, like /health
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'class="status ok"' in html and "/v1/chat/completions" in html
    assert "Authorization: Bearer $KEY" in html and ">k<" not in html


def chromium(url: str, tmp_path, *args: str) -> str:
    assert CHROMIUM, "chromium is not installed (.ci/run installs it)"
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                             *args, url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.live
def test_browser_renders_the_page(tmp_path):
    with FakeServerCpp("llamacpp") as fake, \
            ProxyProcess(fake.url, tmp_path / "proxy.log") as proxy:
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
    assert "required" in client.get("/").get_data(as_text=True)
    assert "keybox\" hidden" not in client.get("/playground").get_data(as_text=True)


def test_a_fleet_of_one_names_its_model(make_client):
    (model,) = make_client().get("/status").get_json()["models"]
    assert model["id"] == "fake-model"
    named = make_client(model_name="qwen").get("/status").get_json()["models"]
    assert [m["id"] for m in named] == ["qwen"]
