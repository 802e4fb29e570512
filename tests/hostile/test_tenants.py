"""What one tenant's key can learn of, or do to, the models of others.

alice may use ``tiny`` only and must not learn that anything else exists; bob may use
``secret``, a model whose server the proxy runs and shares, and may not unload it for
everyone; carol, whose key may manage servers, and the admin may.
"""

from __future__ import annotations

import psutil
import pytest
import requests

from tests.e2e.llama_server import find_server
from tests.e2e.managed import gone, servers_of
from tests.hostile.conftest import ADMIN, ALICE, BOB, KEYS
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.hostile

CAROL = "sk-carol"  # may use "secret" and manage its server
MANAGER = f"""
[[keys]]
name = "carol"
key = "{CAROL}"
models = ["secret"]
manage = true
"""
IGNORED = "x-oai-proxy-ignored-fields"
UNKNOWN = "no-such-model"


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def probes(name: str) -> list:
    """Requests naming the model ``name`` in every place a client can name one."""
    chat = [{"role": "user", "content": "hi"}]
    return [
        ("/v1/chat/completions", {"model": name, "messages": chat, "max_tokens": 2}),
        ("/v1/completions", {"model": name, "prompt": "hi", "max_tokens": 2}),
        ("/v1/embeddings", {"model": name, "input": "hi"}),
        ("/v1/messages", {"model": name, "messages": chat, "max_tokens": 2}),
        ("/api/chat", {"model": name, "messages": chat, "stream": False}),
        ("/api/generate", {"model": name, "prompt": "", "keep_alive": 0}),
        ("/api/show", {"model": name}),
        ("/api/show", {"name": name}),
    ]


def answers(proxy: ProxyProcess, key: str, name: str) -> list:
    """Each probe's status and body, the name it asked for replaced by ``MODEL``."""
    found = []
    for path, body in probes(name):
        answer = requests.post(proxy.url + path, json=body, headers=bearer(key), timeout=60)
        found.append((path, answer.status_code, answer.text.replace(name, "MODEL")))
    return found


def test_a_hidden_key_never_learns_that_another_model_exists(gateway):
    unknown = answers(gateway.proxy, ALICE, UNKNOWN)
    assert all(status == 404 for _, status, _ in unknown), unknown
    assert [text for _, _, text in unknown if "secret" in text] == []
    assert answers(gateway.proxy, ALICE, "secret") == unknown  # word for word
    for path in ("/v1/models", "/api/tags", "/api/ps"):
        listed = requests.get(gateway.url + path, headers=bearer(ALICE), timeout=30)
        assert listed.status_code == 200 and "secret" not in listed.text


def test_errors_name_only_the_models_the_key_may_use(gateway):
    for _, status, text in answers(gateway.proxy, BOB, UNKNOWN):
        assert status in (403, 404) and "tiny" not in text


@pytest.fixture(scope="module")
def shared(tiny, logs, tmp_path_factory):
    """``secret`` on a server the proxy runs, preloaded, behind the keys of the tenants,
    carol's, and the admin key."""
    folder = tmp_path_factory.mktemp("shared")
    (folder / "models.toml").write_text(
        f'[models.secret]\nmodel = "{tiny}"\npreload = true\nargs = ["-np", "1", "-c", "1024"]\n'
    )
    (folder / "keys.toml").write_text(KEYS + MANAGER)
    binary = find_server("llamacpp")
    with ProxyProcess(
        "http://127.0.0.1:9",
        logs / "proxy-shared.log",
        env=binary.env,
        args=[
            "--config",
            str(folder / "models.toml"),
            "--keys",
            str(folder / "keys.toml"),
            "--admin-key",
            ADMIN,
            "--log-dir",
            str(logs / "servers-shared"),
            "--llama-server",
            str(binary.path),
        ],
    ) as proxy:
        yield proxy


def loaded(proxy: ProxyProcess, key: str = BOB) -> psutil.Process:
    """The shared server's process, once it serves."""
    answer = requests.post(
        proxy.url + "/api/generate",
        headers=bearer(key),
        timeout=120,
        json={"model": "secret", "prompt": ""},
    )
    assert answer.status_code == 200 and answer.json()["done_reason"] == "load"
    (server,) = servers_of(proxy)
    return server


def server_state(proxy: ProxyProcess) -> dict:
    (model,) = requests.get(proxy.url + "/admin/models", headers=bearer(ADMIN), timeout=30).json()[
        "models"
    ]
    return model["replicas"][0]["managed"]


def test_a_tenant_cannot_unload_or_pin_a_shared_server(shared):
    server = loaded(shared)
    ttl = server_state(shared)["ttl"]
    for body in (
        {"prompt": "", "keep_alive": 0},
        {"prompt": "hi", "keep_alive": 0, "stream": False, "options": {"num_predict": 2}},
        {"prompt": "hi", "keep_alive": "0s", "options": {"num_predict": 2}},
        {"prompt": "", "keep_alive": -1},
    ):
        answer = requests.post(
            shared.url + "/api/generate",
            headers=bearer(BOB),
            timeout=120,
            json={"model": "secret", **body},
        )
        assert answer.status_code == 200 and answer.text
        assert not gone(server) and servers_of(shared) == [server]
        assert server_state(shared)["state"] == "ready"
        assert answer.headers.get(IGNORED) == "keep_alive"
    assert server_state(shared)["ttl"] == ttl


@pytest.mark.parametrize("key", [CAROL, ADMIN], ids=["managing-key", "admin-key"])
def test_a_managing_key_or_the_admin_unloads_it(shared, key):
    server = loaded(shared, key)
    answer = requests.post(
        shared.url + "/api/generate",
        headers=bearer(key),
        timeout=120,
        json={"model": "secret", "prompt": "", "keep_alive": 0},
    )
    assert answer.status_code == 200 and answer.json()["done_reason"] == "unload"
    assert IGNORED not in answer.headers
    wait_for(lambda: gone(server), "the unloaded server to stop")
    assert server_state(shared)["state"] == "stopped"


def test_a_model_id_that_climbs_out_of_the_cache_is_refused_at_start_up(tiny, logs, tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(f'[models."../../../x"]\nmodel = "{tiny}"\n')
    proxy = ProxyProcess(
        "http://127.0.0.1:9",
        logs / "proxy-climbing-id.log",
        args=["--config", str(path), "--log-dir", str(tmp_path / "a" / "b" / "c" / "logs")],
    )
    with pytest.raises(RuntimeError) as refused:
        proxy.start()
        proxy.stop()
    assert "../../../x" in str(refused.value)
