"""Memory the servers the proxy runs take: the estimate against what llama-server itself
reports, and a budget that fits one model of two."""

from __future__ import annotations

import re
import subprocess

import pytest

from proxy.servers.memory import estimate, read_shape
from tests.polling import wait_for
from tests.processes import ProxyProcess, free_port

from .llama_server import find_server
from .managed import ADMIN, NO_UPSTREAM, admin, servers_of
from .stoppingmodel import write_stopping_gguf

pytestmark = pytest.mark.e2e

MIB = 2**20
KV_LINE = re.compile(r"llama_kv_cache: size = +([0-9.]+) MiB")
WEIGHTS_LINE = re.compile(r"model buffer size = +([0-9.]+) MiB")


def reported(model, args: list, log) -> tuple:
    """``(weights, kv cache)`` in MiB as llama-server prints them while it loads."""
    binary = find_server("llamacpp")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(binary.path), "-m", str(model), "--port", str(free_port()), "-lv", "4", *args],
            env=binary.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: KV_LINE.search(log.read_text()), "the server to size its cache")
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    return float(WEIGHTS_LINE.search(text).group(1)), float(KV_LINE.search(text).group(1))


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "1024"],
        ["-c", "4096", "-np", "4"],
        ["-c", "2048", "-ctk", "f32"],
        ["-c", "8192", "-ctk", "f32", "-ctv", "f32"],
        ["-c", "512", "-ctv", "bf16"],
    ],
    ids=lambda args: "".join(args),
)
def test_the_estimate_is_what_llama_server_reports(model, tmp_path, args):
    size = estimate(read_shape(str(model)), args)
    weights, kv_cache = reported(model, args, tmp_path / "server.log")
    assert round(size.weights / MIB, 2) == weights
    assert round(size.kv_cache / MIB, 2) == kv_cache


def test_its_default_context_is_the_models_own(tmp_path):
    model = write_stopping_gguf(tmp_path / "long.gguf")  # trained on 262144 tokens
    size = estimate(read_shape(str(model)), [])
    assert round(size.kv_cache / MIB, 2) == reported(model, [], tmp_path / "server.log")[1]


def models_file(tmp_path, model, budget: str) -> str:
    other = write_stopping_gguf(tmp_path / "other.gguf")
    path = tmp_path / "models.toml"
    path.write_text(f"""
max_memory = "{budget}"
[models.first]
model = "{model}"
args = ["-np", "1", "-c", "1024"]
[models.second]
model = "{other}"
args = ["-np", "1", "-c", "1024"]
""")
    return str(path)


def test_a_budget_that_fits_one_of_two_models_swaps_them(tmp_path, model, logs):
    binary = find_server("llamacpp")
    with ProxyProcess(
        NO_UPSTREAM,
        logs / "proxy-memory.log",
        env=binary.env,
        args=[
            "--config",
            models_file(tmp_path, model, "100MiB"),
            "--admin-key",
            ADMIN,
            "--llama-server",
            str(binary.path),
            "--log-dir",
            str(logs / "servers-memory"),
        ],
    ) as proxy:
        client = proxy.sdk()
        for name in ("first", "second", "first", "second"):
            reply = client.completions.create(model=name, prompt="the cat", max_tokens=3)
            assert reply.model == name
            assert len(servers_of(proxy)) == 1  # the other was stopped to make room
        listed = {
            m["id"]: m["replicas"][0]["managed"]
            for m in admin(proxy, "GET", "/models").json()["models"]
        }
        running = listed["second"]["memory"]
        assert running["estimate"] > 64 * MIB and 0 < running["measured"]
        assert listed["first"]["state"] == "stopped"
        assert listed["second"]["engine"] == str(binary.path)
        assert "making room for second" in proxy.log()


def test_a_model_larger_than_the_budget_is_refused_with_both_figures(tmp_path, model, logs):
    binary = find_server("llamacpp")
    proxy = ProxyProcess(
        NO_UPSTREAM,
        logs / "proxy-too-big.log",
        env=binary.env,
        args=[
            "--config",
            models_file(tmp_path, model, "10MiB"),
            "--llama-server",
            str(binary.path),
        ],
    )
    with pytest.raises(RuntimeError, match="exited with"):
        proxy.start()
    assert re.search(r"first needs about [0-9.]+ MiB, more than the 10.0 MiB", proxy.log())
    assert "Traceback" not in proxy.log()
