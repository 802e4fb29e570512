"""Named keys through the API: models each may use, limits, usage, and secrets kept out."""

from __future__ import annotations

import contextlib
import logging

import pytest

from proxy.access import journal as journal_module
from proxy.access.gate import Access
from proxy.access.journal import Journal
from proxy.access.keyring import Keyring, KeySpec
from proxy.access.spend import cost
from proxy.api.inprocess import serve_in_process
from proxy.app import create_app
from proxy.config.price import Price
from proxy.config.settings import Settings
from proxy.core.outages import Outages
from tests.fakes.servercpp import FakeServerCpp
from tests.gateways import gateway
from tests.polling import wait_for
from tests.runtimes import runtime_in

KEYS = """
[[keys]]
name = "alice"
key = "sk-alice"
models = ["tiny"]
requests_per_minute = 3

[[keys]]
name = "bob"
key = "sk-bob"
models = ["other"]
hidden = true

[[keys]]
name = "carol"
key = "sk-carol"
tokens_per_minute = 5

[[keys]]
name = "dora"
key = "sk-dora"
tokens_per_day = 200
cached_token_cost = 0.5

[[keys]]
name = "erin"
key = "sk-erin"

[[keys]]
name = "fran"
key = "sk-fran"
usd_per_day = 0.1

[[keys]]
name = "gus"
key = "sk-gus"
local_only = true
"""
MODELS = """
[models.tiny]
aliases = ["gpt-4"]
upstreams = ["{0}"]
[models.other]
upstreams = ["{0}"]
"""
CHAT = {"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client_of():
    """Test clients of gateways of :data:`KEYS` and a models file, closed after the test."""
    with contextlib.ExitStack() as opened:
        yield lambda tmp_path, models: opened.enter_context(gateway(tmp_path, models, KEYS))


@pytest.fixture
def client(tmp_path, client_of):
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        yield client_of(tmp_path, MODELS.format(fake.url))


def as_key(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def chat(client, key: str, **body):
    with client.post(
        "/v1/chat/completions", json={**CHAT, **body}, headers=as_key(key)
    ) as response:
        response.get_data()
        return response


def test_a_key_uses_its_models_only(client):
    assert chat(client, "sk-alice").status_code == 200
    assert chat(client, "sk-alice", model="gpt-4").status_code == 200  # an alias of its model
    refused = chat(client, "sk-alice", model="other")
    assert refused.status_code == 403 and refused.json["error"]["param"] == "model"
    assert "'alice' may not use the model 'other'" in refused.json["error"]["message"]
    hidden = chat(client, "sk-bob", model="tiny")
    assert hidden.status_code == 404 and hidden.json["error"]["code"] == "model_not_found"
    listed = client.get("/v1/models", headers=as_key("sk-bob")).json["data"]
    assert [model["id"] for model in listed] == ["other"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("post", "/v1/chat/completions", {**CHAT, "model": "{}"}, id="chat"),
        pytest.param("post", "/api/chat", {**CHAT, "model": "{}", "stream": False}, id="ollama"),
        pytest.param("post", "/api/show", {"model": "{}"}, id="show"),
        pytest.param("post", "/api/show", {"name": "{}"}, id="show-by-name"),
        pytest.param("post", "/v1/embeddings", {"model": "{}", "input": "x"}, id="embeddings"),
    ],
)
def test_a_hidden_key_cannot_tell_anothers_model_from_none(client, method, path, body):
    """bob may use ``other`` only: ``tiny`` is as absent to him as a model that is not."""

    def asked(model: str):
        named = {
            field: value.format(model) if value == "{}" else value for field, value in body.items()
        }
        answer = getattr(client, method)(path, json=named, headers=as_key("sk-bob"))
        return answer.status_code, answer.get_data(as_text=True).replace(model, "MODEL")

    status, text = asked("gpt-9")
    assert status == 404 and "the models are other" in text and "tiny" not in text
    assert asked("tiny") == asked("gpt-4") == (status, text)


@pytest.mark.parametrize(
    ("key", "status", "listed"),
    [
        pytest.param("sk-alice", 403, "it may use tiny", id="a-key-of-one-model"),
        pytest.param("sk-bob", 404, "the models are other (", id="a-hidden-key"),
        pytest.param("sk-carol", 404, "the models are other, tiny (", id="a-key-of-every-model"),
    ],
)
def test_a_missing_model_names_only_the_ids_the_key_may_use(client, key, status, listed):
    for body in ({"model": "gpt-9"}, {"name": "gpt-9"}):
        answer = client.post("/api/show", json=body, headers=as_key(key))
        assert answer.status_code == status and listed in answer.json["error"]


def test_the_admin_key_is_a_key_of_every_model_on_the_api(client):
    assert chat(client, "admin", model="other").status_code == 200
    assert chat(client, "admin").status_code == 200
    usage = client.get("/admin/usage", headers=as_key("admin")).json["usage"]
    assert {(row["key"], row["model"]) for row in usage} == {("admin", "other"), ("admin", "tiny")}


def test_requests_per_minute_then_429_with_openais_headers(client):
    answers = [chat(client, "sk-alice") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "2"
    refused = answers[3]
    assert refused.json["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert chat(client, "sk-carol").status_code == 200  # another key, another budget


def test_tokens_per_minute_are_charged_after_the_answer(client):
    assert chat(client, "sk-carol").status_code == 200  # uses more than 5 tokens
    refused = chat(client, "sk-carol")
    assert refused.status_code == 429 and refused.json["error"]["type"] == "tokens"


def test_usage_per_key_and_model_for_the_admin(client):
    chat(client, "sk-alice")
    chat(client, "sk-alice", stream=True)
    chat(client, "sk-alice", model="other")
    assert client.get("/admin/usage", headers=as_key("sk-alice")).status_code == 401
    usage = {
        (row["key"], row["model"]): row
        for row in client.get("/admin/usage", headers=as_key("admin")).json["usage"]
    }
    alice = usage[("alice", "tiny")]
    assert alice["requests"] == 2 and alice["errors"] == 0
    assert alice["prompt_tokens"] > 0 and alice["completion_tokens"] > 0
    assert usage[("alice", "other")]["errors"] == 1


def test_an_answer_asked_again_under_its_charge_id_counts_once(client):
    """The proxy's own callers (a batch's request, asked again after a kill) name the charge;
    a client cannot: no header names it."""
    app = client.application
    alice = app.extensions["proxy"].access.identify(b"sk-alice")

    def ask() -> None:
        with client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={**as_key("sk-alice"), "Oai-Proxy.Charge-Id": "same"},
        ) as answer:
            answer.get_data()  # fmt: skip

    for _ in range(2):
        assert (
            serve_in_process(app, alice, "/v1/chat/completions", CHAT, 0, "batch_line").status
            == 200
        )
    ask()
    ask()
    usage = client.get("/admin/usage", headers=as_key("admin")).json["usage"]
    assert [row["requests"] for row in usage if row["key"] == "alice"] == [3]


@pytest.mark.parametrize(
    ("path", "body", "texts"),
    [
        ("/v1/embeddings", {"input": ["a cat", "hi"]}, ["a cat", "hi"]),
        ("/api/embed", {"input": ["a cat", "hi"]}, ["a cat", "hi"]),
        ("/api/embeddings", {"prompt": "a cat"}, ["a cat"]),
        ("/embedding", {"prompt": ["a cat"]}, ["a cat"]),  # the GLM API's
    ],
)
def test_embeddings_tokens_are_charged_to_the_key_as_a_generations_are(
    tmp_path, client_of, path, body, texts
):
    with FakeServerCpp("llamacpp", n_slots=2, embedding=True) as fake:
        client = client_of(tmp_path, MODELS.format(fake.url))
        answer = client.post(path, json={"model": "tiny", **body}, headers=as_key("sk-alice"))
        assert answer.status_code == 200
        tokens = sum(
            client.post("/v1/tokenize", json={"prompt": text}, headers=as_key("admin")).json[
                "count"
            ]
            for text in texts
        )
        usage = client.get("/admin/usage", headers=as_key("admin")).json["usage"]
    alice = next(row for row in usage if row["key"] == "alice")
    assert alice["prompt_tokens"] == tokens > 0 and alice["completion_tokens"] == 0


def test_keys_are_named_in_metrics_and_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    chat(client, "sk-alice")
    chat(client, "sk-nobody")
    scrape = client.get("/metrics", headers=as_key("admin")).get_data(as_text=True)
    assert 'key="alice"' in scrape
    everything = scrape + caplog.text
    assert "sk-alice" not in everything and "sk-nobody" not in everything
    chat(client, "sk-alice", model="other")
    assert "key 'alice' refused the model 'other'" in caplog.text and "sk-alice" not in caplog.text


def test_the_access_log_names_the_key_and_the_model(client, caplog):
    caplog.set_level(logging.INFO, logger="proxy.access")
    chat(client, "sk-alice")
    chat(client, "sk-nobody")
    lines = [r.getMessage() for r in caplog.records if r.name == "proxy.access"]
    assert len(lines) == 2
    assert lines[0].startswith("127.0.0.1 POST /v1/chat/completions 200 ")
    assert lines[0].endswith(" model=tiny key=alice")
    assert " 401 " in lines[1] and lines[1].endswith(" key=-")
    assert "sk-" not in caplog.text


def test_the_access_log_can_be_turned_off(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="proxy.access")
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        app = create_app(
            Settings.of(
                llama_api=fake.url, access_log="off", usage_db=str(tmp_path / "usage.sqlite3")
            ),
            runtime_in(tmp_path),
        )
        with app.test_client().post("/v1/chat/completions", json=CHAT) as response:
            assert response.status_code == 200
    assert not [r for r in caplog.records if r.name == "proxy.access"]


@pytest.mark.parametrize(
    "where, asked, status, says",
    [
        ("body", 200, 200, None),
        ("header", "255", 200, None),
        ("body", 0, 403, "may not ask for priority 0, ahead of its own 128"),
        ("header", "1", 403, "may not ask for priority 1"),
        ("body", "high", 400, "'priority' must be a whole number from 0 (first) to 255"),
        ("header", "-3", 400, "'priority' must be a whole number"),
        ("body", 256, 400, "'priority'"),
        ("body", True, 400, "'priority'"),
    ],
)
def test_a_request_may_step_back_in_line_but_not_ahead_of_its_key(
    client, where, asked, status, says
):
    body = {**CHAT, "priority": asked} if where == "body" else CHAT
    headers = {**as_key("sk-erin"), **({"X-Request-Priority": asked} if where == "header" else {})}
    for path, shaped in [("/v1/chat/completions", body), ("/v1/messages", body)]:
        response = client.post(path, json=shaped, headers=headers)
        assert response.status_code == status, response.get_data(as_text=True)
        if says:
            error = response.get_json()["error"]
            assert says in error["message"]
            if path == "/v1/chat/completions":
                assert error["param"] == "priority"
            else:
                assert response.get_json()["type"] == "error"


def test_each_key_waits_as_one_party_whatever_priority_it_asks():
    steady = KeySpec("steady", b"s", weight=2.0, priority=10, max_concurrent=3)
    bold = KeySpec("bold", b"b", request_priority=True)
    access = Access(Keyring([steady, bold]), None, Journal(None, Outages("a store")))
    party = access.party(steady)
    assert (party.name, party.weight, party.priority, party.cap) == ("steady", 2.0, 10, 3)
    later = access.party(steady, "90")
    assert later.priority == 90 and later.leases is party.leases  # one count of slots leased
    assert access.party(bold, 0).priority == 0
    assert access.party(None, "7").priority == 7 and access.party(None).name == ""


HELD = 64 + 8 + 2 + 4  # what CHAT holds: its prompt's bound and its max_tokens


def budget_of(client, name: str) -> dict:
    listed = client.get("/admin/keys", headers=as_key("admin")).get_json()["keys"]
    (key,) = [key for key in listed if key["name"] == name]
    return key["budgets"]


def test_a_request_that_does_not_fit_beside_what_is_spent_is_refused_before_any_work(client):
    answered = 0
    while (answer := chat(client, "sk-dora")).status_code == 200:
        answered += 1
        day = budget_of(client, "dora")["day"]
        assert day["held"] == 0 and day["remaining"] == 200 - day["spent"]  # let go as it ended
    spent = budget_of(client, "dora")["day"]["spent"]
    assert answered >= 2 and spent <= 200 < spent + HELD  # never past the budget
    assert answer.status_code == 429 and answer.headers["x-budget-remaining-tokens-day"] == str(
        200 - spent
    )
    error = answer.get_json()["error"]
    assert error["code"] == "insufficient_quota"
    assert (
        f"the key 'dora' has {200 - spent} of its 200 tokens of the day left; this request may "
        f"take {HELD} tokens (a prompt of at most {HELD - 4} tokens and an answer of at most 4 "
        "tokens): ask for less" in error["message"]
    )
    assert int(answer.headers["Retry-After"]) > 60  # not before the day turns
    assert budget_of(client, "dora")["day"]["spent"] == spent  # it cost nothing


UNASKED = """
[models.tiny]
upstreams = ["{0}"]
[models.capped]
upstreams = ["{0}"]
defaults = {{ max_tokens = 150 }}
"""


def test_a_request_that_sets_no_length_holds_the_longest_answer_its_model_gives(
    tmp_path, client_of
):
    """Its model's default max_tokens, else the context its server gives once reached: the
    bound its answer is told (:mod:`proxy.backends.servercpp.budget`)."""
    with FakeServerCpp("llamacpp", n_slots=2, n_ctx=1000) as fake:
        client = client_of(tmp_path, UNASKED.format(fake.url))
        unasked = {"messages": [{"role": "user", "content": "hi"}]}

        def chat_of(model: str):
            body = {**unasked, "model": model}
            return client.post("/v1/chat/completions", json=body, headers=as_key("sk-dora"))

        capped = chat_of("capped")
        assert capped.status_code == 429
        assert (
            "(a prompt of at most 74 tokens and an answer of at most 150 tokens)"
            in (capped.get_json()["error"]["message"])
        )
        # its server not reached yet: what is left held, as for an answer of no known bound
        assert chat_of("tiny").status_code == 200
        refused = chat_of("tiny")
        assert refused.status_code == 429
        assert "an answer of at most 1000 tokens" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize("how", ["cut", "failed", "failed-midway"])
def test_a_hold_is_let_go_however_its_answer_ends(tmp_path, client_of, how):
    """A stream its client leaves, an upstream's failure before any byte and one mid-answer:
    each lets its hold go, charged what was made."""
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        client = client_of(tmp_path, MODELS.format(fake.url))
        fake.fail_mode = {"cut": None, "failed": "http500", "failed-midway": "midstream_error"}[how]
        with client.post(
            "/v1/chat/completions", json={**CHAT, "max_tokens": 50, "stream": True},
            headers=as_key("sk-dora"), buffered=False,
        ) as answer:  # fmt: skip
            first = next(iter(answer.response), b"")
            assert first
        day = budget_of(client, "dora")["day"]
        assert day["held"] == 0 and day["spent"] <= HELD + 50 - 4
        assert chat(client, "sk-dora", max_tokens=50).status_code == (200 if how == "cut" else 502)


@pytest.mark.parametrize(
    "path, body",
    [("/v1/rerank", {"query": "q", "documents": ["x" * 50] * 10}),
     ("/v1/embeddings", {"input": ["x" * 100] * 3})],
)  # fmt: skip
def test_texts_to_rank_or_embed_hold_the_budget_too(client, path, body):
    refused = client.post(path, json={"model": "tiny", **body}, headers=as_key("sk-dora"))
    assert refused.status_code == 429
    assert "this request may take" in refused.get_json()["error"]["message"]
    assert budget_of(client, "dora")["day"]["spent"] == 0


def test_a_spent_budget_is_each_apis_quota_error_with_when_it_resets(client, monkeypatch):
    monkeypatch.setattr(journal_module, "SETTLE_EVERY", 600)
    access = client.application.extensions["proxy"].access
    access.charge(access.keyring.find(b"sk-carol"), "tiny", 200, 1, 1)
    access.settle()  # written at once by the journal's thread, which then waits 600 s
    wait_for(lambda: access.journal.kept == 0, "the first charge written")
    access.charge(access.keyring.find(b"sk-dora"), "tiny", 200, 150, 50)
    access.settle()  # as its answer is sent: the key's next request reads it written
    for path, body in [("/v1/chat/completions", CHAT), ("/v1/messages", CHAT)]:
        refused = client.post(path, json=body, headers=as_key("sk-dora"))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-budget-remaining-tokens-day"] == "0"
        error = refused.get_json()["error"]
        assert (
            "the key 'dora' has spent its 200 tokens of the day; it resets in" in (error["message"])
        )
        if path == "/v1/chat/completions":
            assert error["code"] == "insufficient_quota"
        else:
            assert error["type"] == "rate_limit_error"
    assert chat(client, "sk-carol").status_code == 200  # other keys go on


def test_the_admin_api_lists_keys_their_settings_and_budgets_never_their_secrets(client):
    chat(client, "sk-dora")
    listed = client.get("/admin/keys", headers=as_key("admin")).get_json()["keys"]
    assert [key["name"] for key in listed] == [
        "alice",
        "bob",
        "carol",
        "dora",
        "erin",
        "fran",
        "gus",
    ]
    dora = listed[3]
    assert dora["cached_token_cost"] == 0.5 and dora["priority"] == 128
    day = dora["budgets"]["day"]
    assert day["tokens"] == 200 and day["spent"] > 0 and day["remaining"] == 200 - day["spent"]
    assert 0 < day["resets_in_seconds"] <= 86400
    assert listed[0]["budgets"] == {} and "sk-" not in str(listed)
    assert client.get("/admin/keys", headers=as_key("sk-alice")).status_code == 401


def test_each_keys_turns_and_place_in_line_are_on_metrics(client):
    for key in ("sk-alice", "sk-alice", "sk-carol"):
        assert chat(client, key).status_code == 200
    scrape = client.get("/metrics", headers=as_key("admin")).get_data(as_text=True)

    def figure(name: str, key: str) -> float:
        (line,) = [
            line for line in scrape.splitlines()
            if line.startswith(f"oai_proxy_{name}{{") and f'key="{key}"' in line
        ]  # fmt: skip
        return float(line.rsplit(" ", 1)[1])

    assert figure("key_slots_served_total", "alice") == 2
    assert figure("key_slots_served_total", "carol") == 1
    assert figure("key_slots_busy", "alice") == figure("key_queue_length", "alice") == 0


def test_spend_on_a_priced_model_for_the_admin(tmp_path, client_of):
    with FakeServerCpp("llamacpp", n_slots=2) as fake:
        priced = MODELS.format(fake.url).replace(
            "[models.other]", "price = { input = 1.0, output = 2.0 }\n[models.other]"
        )
        client = client_of(tmp_path, priced)
        chat(client, "sk-erin")
        chat(client, "sk-erin", model="other")
        usage = {
            row["model"]: row
            for row in client.get("/admin/usage", headers=as_key("admin")).json["usage"]
        }
        tiny = usage["tiny"]
        expected = (tiny["prompt_tokens"] * 1.0 + tiny["completion_tokens"] * 2.0) / 1_000_000
        assert tiny["spend_usd"] == round(expected, 6) and "spend_usd" not in usage["other"]
        keys = {
            k["name"]: k for k in client.get("/admin/keys", headers=as_key("admin")).json["keys"]
        }
        assert keys["erin"]["spend_usd"] == tiny["spend_usd"] and keys["alice"]["spend_usd"] == 0.0


PRICED = """
[models.tiny]
upstreams = ["{0}"]
fallbacks = ["other"]
price = {{ input = 1000, output = 1000 }}
[models.other]
upstreams = ["{1}"]
price = {{ input = 10, cached_input = 1, output = 20 }}
[models.free]
upstreams = ["{1}"]
[models.cloud]
backend = "openai"
upstreams = ["http://127.0.0.1:9/v1"]
"""


@pytest.fixture
def priced(tmp_path, client_of):
    """A priced model whose server fails, falling back to another priced one, a model
    without a price, and a cloud one."""
    with (
        FakeServerCpp("llamacpp", n_slots=2) as failing,
        FakeServerCpp("llamacpp", n_slots=2) as answering,
    ):
        failing.fail_mode = "http500"
        yield client_of(tmp_path, PRICED.format(failing.url, answering.url))


def test_a_money_budget_is_charged_at_the_price_of_the_model_that_answered(priced):
    for _ in range(2):
        free = chat(priced, "sk-fran", model="free")
        assert free.status_code == 200
        assert free.headers["x-budget-remaining-usd-day"] == "0.1"  # no price, no cost
    assert free.headers["x-budget-limit-usd-day"] == "0.1"
    assert "x-budget-limit-tokens-day" not in free.headers
    answered = chat(priced, "sk-fran", model="tiny")
    assert answered.headers["x-oai-proxy-served-model"] == "other"
    usage = answered.get_json()["usage"]
    cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    micros = cost(Price(10.0, 20.0, 1.0), usage["prompt_tokens"], cached,
                  usage["completion_tokens"])  # fmt: skip
    day = budget_of(priced, "fran")["usd_day"]
    assert day["spent"] == micros / 1_000_000  # other's price, not tiny's
    assert day["usd"] == 0.1 and day["held"] == 0
    assert day["remaining"] == (100_000 - micros) / 1_000_000
    access = priced.application.extensions["proxy"].access
    access.charge(access.keyring.find(b"sk-fran"), "other", 200, 2500, 0, 0, Price(10, 0))
    access.settle()
    held = (HELD - 4) * 1000 + 4 * 1000  # at tiny's price, the model it is sent to
    assert micros + 25_000 + held > 100_000  # what is left holds a cheap answer, not tiny's
    for path in ("/v1/chat/completions", "/v1/messages"):
        refused = priced.post(path, json=CHAT, headers=as_key("sk-fran"))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        message = refused.get_json()["error"]["message"]
        assert f"this request may take {held / 1_000_000:g} US dollars" in message
    assert chat(priced, "sk-fran", model="other").status_code == 200
    assert chat(priced, "sk-fran", model="free").status_code == 200  # it costs no money


def test_a_local_only_key_uses_and_sees_the_local_models_only(priced):
    listed = priced.get("/v1/models", headers=as_key("sk-gus")).json["data"]
    assert sorted(model["id"] for model in listed) == ["free", "other", "tiny"]
    assert chat(priced, "sk-gus", model="free").status_code == 200
    refused = chat(priced, "sk-gus", model="cloud")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == (
        "the key 'gus' may not use the model 'cloud'; it may use the local models, free, "
        "other, tiny"
    )
    everything = priced.get("/v1/models", headers=as_key("sk-erin")).json["data"]
    assert "cloud" in {model["id"] for model in everything}


@pytest.mark.parametrize(
    "models, local, narrowed",
    [
        ((), {"qwen", "llama"}, ("llama", "qwen")),  # every local model served now
        (("qwen", "cloud"), {"qwen", "llama"}, ("qwen",)),  # of its own, the local ones
        ((), set(), ()),  # none served: it may use none (not every one)
    ],
)
def test_a_local_only_key_is_narrowed_to_the_local_models_served_now(models, local, narrowed):
    key = KeySpec("gus", b"sk-gus", models, local_only=True)
    access = Access(Keyring([key]), None, Journal(None, Outages("a store")))
    access.local_models = lambda: frozenset(local)
    found = access.identify(b"sk-gus")
    assert found.models == narrowed and access.find(b"sk-gus") == found
    assert not found.may_use("cloud") and all(found.may_use(model) for model in narrowed)
