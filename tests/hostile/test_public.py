"""What the proxy shows without a key, and what it shows anyone of a server's command line.

The gateway serves ``tiny`` and ``secret`` (alice may use the one, bob the other) and runs
a server of its own, ``broken``, whose start fails and whose command line carries an
upstream ``--api-key``. A visitor without a key learns whether the proxy is healthy, and
nothing of its models, servers, paths, addresses or keys; nobody, the admin included, ever
reads the ``--api-key``'s value.
"""

from __future__ import annotations

import pytest
import requests

from tests.e2e.llama_server import LlamaServer, find_server
from tests.hostile.conftest import ADMIN, ALICE, BOB, KEYS
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.hostile

SECRET = "SOMESECRET"  # the upstream key in the broken server's command line
PAGE = {"Accept": "text/html"}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def site(tiny, logs, tmp_path_factory):
    """The gateway of the tenants with a server of its own whose start fails, once it has
    failed; and every path and address a visitor must not learn."""
    folder = tmp_path_factory.mktemp("public")
    junk = folder / "broken.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 60)  # a GGUF by its first bytes, no model inside
    servers = logs / "servers-public"
    binary = find_server("llamacpp")
    with LlamaServer(tiny, logs / "public.log", parallel=2) as server:
        (folder / "models.toml").write_text(
            f'[models.tiny]\nupstreams = ["{server.url}"]\n'
            f'[models.secret]\nupstreams = ["{server.url}"]\n'
            f'[models.broken]\nmodel = "{junk}"\npreload = true\n'
            f'args = ["-c", "512", "--api-key", "{SECRET}"]\n'
        )
        (folder / "keys.toml").write_text(KEYS)
        with ProxyProcess(
            server.url,
            logs / "proxy-public.log",
            env=binary.env,
            args=[
                "--config",
                str(folder / "models.toml"),
                "--keys",
                str(folder / "keys.toml"),
                "--admin-key",
                ADMIN,
                "--log-dir",
                str(servers),
                "--llama-server",
                str(binary.path),
            ],
        ) as proxy:
            wait_for(
                lambda: broken_state(proxy) == "failed",
                "the broken server's start to fail",
                timeout=60,
            )
            yield (
                proxy,
                [
                    SECRET,
                    server.url,
                    str(tiny),
                    str(junk),
                    str(logs),
                    str(servers),
                    str(folder),
                    "alice",
                    "bob",
                    "sk-",
                ],
            )


def broken_state(proxy: ProxyProcess) -> str:
    listed = requests.get(proxy.url + "/admin/models", headers=bearer(ADMIN), timeout=30).json()
    broken = next(model for model in listed["models"] if model["id"] == "broken")
    return broken["replicas"][0]["managed"]["state"]


def shows_none(text: str, hidden: list) -> None:
    assert [word for word in hidden if word in text] == []


def test_health_tells_a_visitor_only_whether_the_proxy_is_healthy(site):
    proxy, hidden = site
    for headers in ({}, bearer(ALICE), bearer(BOB), bearer("sk-unknown")):
        health = requests.get(proxy.url + "/health", headers=headers, timeout=30)
        assert (health.status_code, health.json()) == (503, {"status": "unavailable"})


def test_the_status_and_the_fleet_page_show_a_visitor_no_model_server_path_or_key(site):
    proxy, hidden = site
    status = requests.get(proxy.url + "/status", timeout=30)
    assert status.status_code == 200
    body = status.json()
    assert body["models"] == [] and body["history"] == {} and body["key_required"] is True
    assert body["ok"] is False
    shows_none(status.text, hidden + ["secret", "broken"])
    page = requests.get(proxy.url + "/", headers=PAGE, timeout=30).text
    assert "not ready" in page
    shows_none(page.lower(), [word.lower() for word in hidden] + ["secret", "broken"])


def test_a_tenant_sees_on_the_status_only_the_models_its_key_may_use(site):
    proxy, hidden = site
    for key, model in ((ALICE, "tiny"), (BOB, "secret")):
        status = requests.get(proxy.url + "/status", headers=bearer(key), timeout=30)
        assert [shown["id"] for shown in status.json()["models"]] == [model]
        assert set(status.json()["history"]) <= {model}
        shows_none(status.text, hidden)


def test_metrics_name_keys_so_a_visitor_or_a_tenant_is_refused(site):
    proxy, hidden = site
    requests.post(
        proxy.url + "/v1/completions",
        headers=bearer(ALICE),
        timeout=60,
        json={"model": "tiny", "prompt": "the cat", "max_tokens": 2},
    )
    for headers in ({}, bearer(ALICE)):
        refused = requests.get(proxy.url + "/metrics", headers=headers, timeout=30)
        assert refused.status_code in (401, 403)
        shows_none(refused.text, hidden)
    scraped = requests.get(proxy.url + "/metrics", headers=bearer(ADMIN), timeout=30)
    assert scraped.status_code == 200 and 'key="alice"' in scraped.text
    assert SECRET not in scraped.text


def test_nobody_reads_the_upstream_key_not_even_the_admin(site):
    proxy, _ = site
    admin = bearer(ADMIN)
    health = requests.get(proxy.url + "/health", headers=admin, timeout=30)
    assert health.status_code == 503 and "exited during start-up" in health.text
    views = [health.text] + [
        requests.get(proxy.url + path, headers=admin, timeout=30).text
        for path in ("/status", "/admin/models", "/admin/models/broken/log?lines=2000")
    ]
    assert "--api-key" in views[-1]  # the log's start line, its value blanked
    logged = list((proxy.log_path.parent).glob("servers-public/broken.log"))
    assert logged
    for text in views + [proxy.log()] + [path.read_text(errors="replace") for path in logged]:
        assert SECRET not in text
