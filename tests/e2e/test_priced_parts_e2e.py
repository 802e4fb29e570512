"""An answer that several models made is charged part by part, each part's tokens under its
own model at its own price: on a real llama-server whose model's replica fails every
second generation (``servers/flaky_replica.py``), so that one choice of ``n = 2`` and the
second turn of a tool loop (the reference filesystem server's ``read_text_file``) fall back
to a model of another price on the same server."""

from __future__ import annotations

import json
import math

import pytest
import requests

from tests.processes import ProxyProcess

from .hostedtools import ANSWER, CONTENT, CONTEXT, NOTES, QUESTION, SERVER, WORD, write_model
from .llama_server import LlamaServer
from .refusing import FlakyReplica
from .test_mcp_servers_e2e import npm_server

pytestmark = [pytest.mark.e2e, pytest.mark.mcp]

PRICES = {"dear": (10, 20), "cheap": (1, 2)}  # US dollars per million prompt, answer tokens
KEYS = f'[[keys]]\nname = "team"\nkey = "sk-team"\nusd_per_day = 100\ntools = ["{SERVER}"]\n'
TEAM = {"Authorization": "Bearer sk-team"}
ADMIN = {"Authorization": "Bearer sk-admin"}
MODELS = """
[models.reader]
upstreams = ["{flaky}"]
tools = ["{server_name}"]
fallbacks = ["reader-cheap"]
price = {{ input = {dear[0]}, output = {dear[1]} }}
[models.reader.defaults]
cache_prompt = true
[models.reader-cheap]
upstreams = ["{server}"]
price = {{ input = {cheap[0]}, output = {cheap[1]} }}
[models.reader-cheap.defaults]
cache_prompt = true
[models.plain]
upstreams = ["{flaky}"]
fallbacks = ["plain-cheap"]
price = {{ input = {dear[0]}, output = {dear[1]} }}
[models.plain-cheap]
upstreams = ["{server}"]
price = {{ input = {cheap[0]}, output = {cheap[1]} }}
[mcp_servers.{server_name}]
command = {command}
"""


@pytest.fixture(scope="module")
def fleet(logs, tmp_path_factory):
    work = tmp_path_factory.mktemp("priced-parts")
    folder = work / "files"
    folder.mkdir()
    (folder / NOTES).write_text(CONTENT, encoding="utf-8")
    (work / "keys.toml").write_text(KEYS)
    model = write_model(work / "reader.gguf")
    with (
        LlamaServer(
            model, logs / "priced-parts-server.log", parallel=2, ctx_size=CONTEXT
        ) as server,
        FlakyReplica(server.url, logs / "priced-parts-flaky.log") as flaky,
    ):
        (work / "models.toml").write_text(
            MODELS.format(
                flaky=flaky.url,
                server=server.url,
                server_name=SERVER,
                command=json.dumps([npm_server("filesystem"), str(folder)]),
                **PRICES,
            )
        )
        args = ["--config", str(work / "models.toml"), "--keys", str(work / "keys.toml"),
                "--admin-key", "sk-admin", "--log-dir", str(logs)]  # fmt: skip
        with ProxyProcess(server.url, logs / "proxy-priced-parts.log", args=args) as proxy:
            chat(proxy, model="plain", max_tokens=1)  # what the proxy learns of the servers
            proxy.flaky = flaky
            yield proxy


def chat(proxy: ProxyProcess, **body) -> requests.Response:
    body = {"messages": [{"role": "user", "content": QUESTION}], **body}
    return requests.post(proxy.url + "/v1/chat/completions", json=body, headers=TEAM, timeout=300)


def usage(proxy: ProxyProcess) -> dict:
    """The team's usage rows, by model: ``(prompt, completion, spend in US dollars)``."""
    rows = requests.get(proxy.url + "/admin/usage", headers=ADMIN, timeout=30).json()["usage"]
    return {
        row["model"]: (row["prompt_tokens"], row["completion_tokens"], row.get("spend_usd", 0))
        for row in rows
        if row["key"] == "team"
    }


def spent(proxy: ProxyProcess) -> float:
    keys = requests.get(proxy.url + "/admin/keys", headers=ADMIN, timeout=30).json()["keys"]
    return next(key for key in keys if key["name"] == "team")["budgets"]["usd_day"]["spent"]


def next_passes(proxy: ProxyProcess) -> None:
    """The flaky replica's next generation passed (a failed one sent it first, if need be)."""
    counts = proxy.flaky.counted()
    if (counts["passed"] + counts["failed"]) % 2:
        requests.post(proxy.flaky.url + "/completion", json={"prompt": "x", "n_predict": 1},
                      timeout=60)  # fmt: skip


def parts(before: dict, after: dict) -> dict:
    """What each model's row gained."""
    return {
        model: tuple(a - b for a, b in zip(counts, before.get(model, (0, 0, 0)), strict=True))
        for model, counts in after.items()
        if counts != before.get(model)
    }


def micro_usd(price: tuple, prompt: int, completion: int) -> int:
    return math.ceil(prompt * price[0] + completion * price[1])


@pytest.mark.parametrize(
    "body, dear, cheap",
    [
        ({"model": "plain", "n": 2, "max_tokens": 8}, "plain", "plain-cheap"),
        ({"model": "reader", "max_tokens": 64}, "reader", "reader-cheap"),
    ],
    ids=["a-choice-of-two", "a-turn-of-the-tool-loop"],
)
def test_each_part_is_charged_under_its_own_model_at_its_own_price(fleet, body, dear, cheap):
    next_passes(fleet)
    flaky, rows, money = fleet.flaky.counted(), usage(fleet), spent(fleet)
    answer = chat(fleet, **body)
    assert answer.status_code == 200, answer.text
    now = fleet.flaky.counted()
    assert (now["passed"] - flaky["passed"], now["failed"] - flaky["failed"]) == (1, 1)
    told = answer.json()["usage"]
    if body["model"] == "reader":  # the second turn read the file, on the cheaper model
        assert WORD in answer.json()["choices"][0]["message"]["content"] == ANSWER
        assert answer.headers["x-oai-proxy-served-model"] == f"{dear}, {cheap}"
    else:
        assert sorted(answer.headers["x-oai-proxy-served-model"].split(", ")) == [dear, cheap]
    gained = parts(rows, usage(fleet))
    assert set(gained) == {dear, cheap}
    assert sum(p for p, _, _ in gained.values()) == told["prompt_tokens"]  # n's prompt: once
    assert sum(c for _, c, _ in gained.values()) == told["completion_tokens"]
    charged = 0
    for model, price in ((dear, PRICES["dear"]), (cheap, PRICES["cheap"])):
        prompt, completion, dollars = gained[model]
        assert completion > 0
        assert dollars == pytest.approx((prompt * price[0] + completion * price[1]) / 1e6)
        charged += micro_usd(price, prompt, completion)
    assert round((spent(fleet) - money) * 1_000_000) == charged  # each part at its price
