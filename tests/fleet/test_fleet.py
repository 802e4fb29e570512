"""The fleet over fake servers on real ports: routing, failing over, probing back, affinity."""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import replace

import pytest

from proxy.app import create_app
from proxy.config.modelsfile import parse_catalog
from proxy.config.settings import Settings
from proxy.core.answers import Chunk, Served
from proxy.core.caller import Caller
from proxy.core.conversation import conversation_id
from proxy.core.errors import (
    ContextLengthError,
    ModelNotFoundError,
    UntranslatableError,
    UpstreamError,
    UpstreamUnavailableError,
)
from proxy.core.types import GenerationRequest, Message, Verbatim
from proxy.fleet.build import Models, build_fleet
from proxy.fleet.placement import BALANCE, rank
from proxy.ops.measure import Measure
from tests.fakes.servercpp import FakeServerCpp
from tests.polling import wait_for
from tests.runtimes import NO_FILES

KINDS = ["powerinfer", "llamacpp-2023", "llamacpp"]


@pytest.fixture
def servers(request):
    kind = getattr(request, "param", "llamacpp")
    with ExitStack() as stack:
        yield [stack.enter_context(FakeServerCpp(kind, n_slots=2)) for _ in range(2)]


def fleet_of(servers, **model):
    catalog = parse_catalog(
        {
            "models": {
                "tiny": {
                    "aliases": ["gpt-3.5-turbo"],
                    "upstreams": [s.url for s in servers],
                    **model,
                }
            }
        },
        "test",
    )
    return build_fleet(Settings(), NO_FILES, catalog)


def conversation(document: str, turns: int = 1) -> GenerationRequest:
    messages = [Message("system", "Answer from the document."), Message("user", document)]
    for turn in range(1, turns):
        messages += [Message("assistant", "Hello, world!"), Message("user", f"more {turn}")]
    return GenerationRequest(model="tiny", messages=tuple(messages), max_tokens=4)


def preferred(servers, request) -> FakeServerCpp:
    first = rank(conversation_id(request), [s.url for s in servers])[0]
    return next(s for s in servers if s.url == first)


def text_of(stream) -> str:
    """The text of a fleet's stream: its chunks', after who served them."""
    return "".join(chunk.text for chunk in stream if type(chunk) is Chunk)


def completions(server: FakeServerCpp) -> int:
    return sum(1 for path, _, _ in server.requests if path == "/completion")


@pytest.mark.parametrize("servers", KINDS, indirect=True)
def test_turns_of_a_conversation_go_to_its_replica_and_slot(servers):
    with fleet_of(servers) as fleet:
        request = conversation("the first document")
        home = preferred(servers, request)
        for turns in range(1, 4):
            fleet.complete(conversation("the first document", turns))
            list(fleet.stream(conversation("the first document", turns)))
        away = next(s for s in servers if s is not home)
        assert completions(home) == 6 and completions(away) == 0
        served = home.requested_slots
        if home.kind == "llamacpp":  # it finds the slot holding the prefix by itself
            assert set(served) == {-1}
        else:
            assert served[0] == -1 and len(set(served[1:])) == 1 and served[1] >= 0


def test_unrelated_conversations_use_both_replicas(servers):
    with fleet_of(servers) as fleet:
        for index in range(12):
            fleet.complete(conversation(f"document {index}"))
    assert all(completions(server) > 0 for server in servers)


def test_affinity_off_sends_no_slot(servers):
    with fleet_of(servers, affinity=False) as fleet:
        for _ in range(3):
            fleet.complete(conversation("a document", 2))
    assert {slot for s in servers for slot in s.requested_slots} == {-1}


@pytest.mark.parametrize("servers", KINDS, indirect=True)
def test_a_request_that_never_reached_its_replica_goes_to_the_other(servers):
    with fleet_of(servers) as fleet:
        request = conversation("a document for the dead replica")
        dead = preferred(servers, request)
        alive = next(s for s in servers if s is not dead)
        dead.stop()
        assert fleet.complete(request).text == "Hello, world!"
        assert text_of(fleet.stream(request)) == "Hello, world!"
        assert completions(alive) == 2
        health = fleet.check()
        replicas = {r["url"]: r["ok"] for r in health.detail["models"][0]["replicas"]}
        assert health.ok and replicas == {dead.url: False, alive.url: True}


def test_a_stream_asks_no_replica_before_its_first_chunk_is_asked_for(servers):
    with fleet_of(servers) as fleet:
        stream = fleet.stream(conversation("a document"))
        assert sum(completions(server) for server in servers) == 0
        assert text_of(stream) == "Hello, world!"
        assert sum(completions(server) for server in servers) == 1


def test_a_stream_that_fails_after_its_first_chunk_is_not_sent_elsewhere(servers):
    with fleet_of(servers) as fleet:
        request = conversation("a document cut short")
        home = preferred(servers, request)
        other = next(s for s in servers if s is not home)
        home.fail_mode = "truncated_stream"
        stream = fleet.stream(request)
        assert type(next(stream)) is Served and next(stream).text
        with pytest.raises(UpstreamError):
            list(stream)
        assert completions(other) == 0  # the client had bytes: the failure is theirs


def test_a_replica_that_returns_is_probed_back_into_rotation(servers):
    with fleet_of(servers) as fleet:
        request = conversation("a document for the dead replica")
        dead = preferred(servers, request)
        dead.stop()
        fleet.complete(request)
        assert fleet.models()[0].meta["state"] == "ready"
        model = fleet._models["tiny"]
        assert not model.rotation.healthy(dead.url)
        dead.start()
        wait_for(lambda: model.rotation.healthy(dead.url), timeout=10)
        fleet.complete(request)  # its cache is on the other replica now: it stays there
        assert completions(dead) == 0
        newcomer = next(
            conversation(f"doc {i}")
            for i in range(100)
            if preferred(servers, conversation(f"doc {i}")) is dead
        )
        fleet.complete(newcomer)
        assert completions(dead) == 1


def test_a_returning_replica_is_detected_afresh(servers):
    with fleet_of(servers) as fleet:
        home = servers[0]
        first, second = [
            r
            for r in (conversation(f"doc {i}") for i in range(100))
            if preferred(servers, r) is home
        ][:2]
        fleet.complete(first)
        home.stop()
        fleet.complete(first)  # goes to the other replica; home leaves the rotation
        replacement = FakeServerCpp("powerinfer", n_slots=2)
        replacement._port = home.port  # the same address, another build of server.cpp
        with replacement.start():
            wait_for(lambda: fleet._models["tiny"].rotation.healthy(home.url), timeout=10)
            assert fleet.complete(second).text == "Hello, world!"
            assert completions(replacement) == 1
            assert "slot_id" in replacement.requests[-1][1]  # PowerInfer's name for the slot


def test_every_replica_down_is_a_503(servers):
    with fleet_of(servers) as fleet:
        for server in servers:
            server.stop()
        with pytest.raises(UpstreamUnavailableError):
            fleet.complete(conversation("doc"))
        assert fleet.models()[0].meta["state"] == "unavailable"
        assert not fleet.check().ok


def test_a_full_replica_spills_to_the_other(servers):
    for server in servers:
        server.token_delay = 0.05
    with fleet_of(servers, slots=1) as fleet:
        request = conversation("doc")
        home = preferred(servers, request)
        away = next(s for s in servers if s is not home)
        # the same opening twice, at once: a new conversation moves as soon as its replica
        # has no free slot (one that goes on would wait for it a little longer)
        streams = [fleet.stream(conversation("doc")) for _ in range(2)]
        firsts = [next(stream) for stream in streams]  # told once the first chunk is in
        assert all(type(first) is Served for first in firsts)
        for stream in streams:
            list(stream)
        assert completions(home) == 1 and completions(away) == 1


def test_unknown_model_names_the_ids(servers):
    catalog = parse_catalog(
        {"models": {"a": {"upstreams": [servers[0].url]}, "b": {"upstreams": [servers[1].url]}}},
        "test",
    )
    with build_fleet(Settings(), NO_FILES, catalog) as fleet:
        with pytest.raises(ModelNotFoundError, match="the models are a, b"):
            fleet.complete(GenerationRequest(model="gpt-4", prompt="hi"))
        fleet.complete(GenerationRequest(model="b", prompt="hi"))
        assert completions(servers[1]) == 1 and completions(servers[0]) == 0


def test_the_api_routes_by_model_and_alias(servers, runtime):
    catalog = {
        "default": "a",
        "models": {
            "a": {"aliases": ["gpt-3.5-turbo"], "upstreams": [servers[0].url]},
            "b": {
                "aliases": ["embedder"],
                "upstreams": [servers[1].url],
                "defaults": {"max_tokens": 3, "temperature": 0.5},
            },
        },
    }
    app = create_app(
        Settings(), runtime, backend=build_fleet(Settings(), NO_FILES, parse_catalog(catalog, "t"))
    )
    client = app.test_client()
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    for name, server in (("gpt-3.5-turbo", servers[0]), ("b", servers[1]), (None, servers[0])):
        body = {**chat, **({"model": name} if name else {})}
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
        assert response.get_json()["model"] == (name or "a")
        assert server.requests[-1][0] == "/completion"
    sent = servers[1].requests[-1][1]
    assert sent["n_predict"] == 3 and sent["temperature"] == 0.5
    missing = client.post("/v1/chat/completions", json={**chat, "model": "gpt-4"})
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "model_not_found"
    assert "a, b" in missing.get_json()["error"]["message"]
    listed = client.get("/v1/models").get_json()["data"]
    assert [m["id"] for m in listed] == ["a", "gpt-3.5-turbo", "b", "embedder"]
    assert listed[1]["alias_of"] == "a" and listed[0]["state"] == "ready"
    tokens = client.post("/v1/tokenize", json={"prompt": "hello", "model": "embedder"})
    assert tokens.status_code == 200 and servers[1].requests[-1][0] == "/tokenize"
    glm_chat = client.post("/chat", json={"prompt": "hi", "model": "b"})
    assert glm_chat.status_code == 200 and servers[1].requests[-1][0] == "/completion"
    glm_tokens = client.post("/tokenize", json={"prompt": "hi", "model": "gpt-3.5-turbo"})
    assert glm_tokens.status_code == 200 and servers[0].requests[-1][0] == "/tokenize"
    unknown = client.post("/v1/embeddings", json={"input": "hi", "model": "gpt-4"})
    assert unknown.status_code == 404


def test_the_admin_api_is_off_without_its_key_and_closed_to_client_keys(servers, runtime):
    off = create_app(Settings.of(llama_api=servers[0].url), runtime).test_client()
    assert off.get("/admin/models").status_code == 404
    keyed = create_app(
        Settings.of(llama_api=servers[0].url, api_key=("client",), admin_key="admin"), runtime
    ).test_client()
    assert keyed.get("/admin/models", headers={"Authorization": "Bearer client"}).status_code == 401
    listed = keyed.get("/admin/models", headers={"Authorization": "Bearer admin"})
    assert listed.status_code == 200
    assert listed.get_json()["models"][0]["replicas"][0]["url"] == servers[0].url
    not_run = keyed.post("/admin/models/x/load", headers={"Authorization": "Bearer admin"})
    assert not_run.status_code == 400 and "does not run" in not_run.get_json()["error"]["message"]


def test_flags_alone_accept_any_model_name(servers, runtime):
    client = create_app(Settings.of(llama_api=tuple(s.url for s in servers)), runtime).test_client()
    response = client.post("/v1/completions", json={"model": "whatever", "prompt": "hi"})
    assert response.status_code == 200 and response.get_json()["model"] == "whatever"


def shared_fleet(servers, redis_url):
    catalog = parse_catalog({"models": {"tiny": {"upstreams": [s.url for s in servers]}}}, "test")
    return build_fleet(Settings.of(redis_url=redis_url), NO_FILES, catalog)


def test_two_proxies_sharing_redis_balance_new_conversations(servers, redis_client, redis_url):
    """Twelve conversations whose replica by hashing alone is the same one: with the live
    conversations shared, every proxy's new ones go where fewer live."""
    documents = [f"document {index}" for index in range(200)]
    home = preferred(servers, conversation(documents[0]))
    same = [d for d in documents if preferred(servers, conversation(d)) is home][:12]
    with shared_fleet(servers, redis_url) as first, shared_fleet(servers, redis_url) as second:
        for index, document in enumerate(same):
            (first if index % 2 else second).complete(conversation(document))
        # hashing alone: 12 and 0; bounded: none past 1 + BALANCE times the mean
        counts = [completions(server) for server in servers]
        assert min(counts) > 0 and max(counts) <= math.ceil((1 + BALANCE) * 12 / 2)
        before = {server.url: completions(server) for server in servers}
        for index, document in enumerate(same):  # each proxy goes on the other's conversations
            (second if index % 2 else first).complete(conversation(document, turns=2))
        after = {server.url: completions(server) - before[server.url] for server in servers}
    assert after == {server.url: before[server.url] for server in servers}


def test_without_redis_the_proxy_places_by_hashing_alone(servers):
    with shared_fleet(servers, "redis://127.0.0.1:1/0") as fleet:
        request = conversation("a document")
        fleet.complete(request)
    assert completions(preferred(servers, request)) == 1


def test_a_fleet_serves_a_new_catalog_keeping_what_did_not_change(servers):
    fleet = fleet_of(servers[:1])
    try:
        before = fleet._model("tiny")
        request = conversation("a document")
        assert fleet.complete(request).text
        both = parse_catalog(
            {
                "models": {
                    "tiny": {"aliases": ["gpt-3.5-turbo"], "upstreams": [servers[0].url]},
                    "second": {"upstreams": [servers[1].url]},
                }
            },
            "test",
        )
        made = []
        models = Models(Settings(), NO_FILES, None)
        gone = fleet.serve_instead(both, lambda spec: made.append(spec) or models.make_model(spec))
        assert gone == [] and [spec.id for spec in made] == ["second"]
        assert fleet._model("tiny") is before  # its replicas and conversations stay
        assert fleet.listed_id(fleet.resolve("second")) == "second"
        only_second = parse_catalog({"models": {"second": {"upstreams": [servers[1].url]}}}, "t")
        gone = fleet.serve_instead(only_second, lambda spec: pytest.fail("nothing is new"))
        assert gone == [before]
        with pytest.raises(ModelNotFoundError):
            fleet.listed_id(fleet.resolve("tiny"))
        fleet.retire(before, within=1)
    finally:
        fleet.close()


@pytest.fixture
def local_and_cloud():
    with (
        FakeServerCpp("llamacpp", n_slots=2) as local,
        FakeServerCpp("llamacpp", n_slots=2, tokens=["From", " the", " cloud"]) as cloud,
    ):
        catalog = parse_catalog(
            {
                "models": {
                    "local": {"upstreams": [local.url], "fallbacks": ["cloud"]},
                    "cloud": {"upstreams": [cloud.url]},
                }
            },
            "test",
        )
        with build_fleet(Settings(), NO_FILES, catalog) as fleet:
            yield fleet, local, cloud


def asked_of(model: str, may_use=lambda model_id: True) -> GenerationRequest:
    return GenerationRequest(
        model=model,
        messages=(Message("user", "hi"),),
        max_tokens=4,
        caller=Caller(measure=Measure(), may_use=may_use),
    )


@pytest.mark.parametrize("failure", ["stopped", "http500", "garbage"])
def test_a_model_that_cannot_answer_falls_back_before_the_first_byte(local_and_cloud, failure):
    fleet, local, cloud = local_and_cloud
    if failure == "stopped":
        local.stop()
    else:
        local.fail_mode = failure
    answer = fleet.complete(asked_of("local"))
    assert answer.text == "From the cloud" and answer.served == Served("cloud", True)
    stream = fleet.stream(asked_of("local"))
    assert next(stream) == Served("cloud", True) and text_of(stream) == "From the cloud"


def test_a_model_no_connection_reached_is_asked_after_its_fallback_until_reached(
    local_and_cloud, caplog
):
    """The first request waits on the failed connection and falls back; the next go to the
    fallback first, the model not asked, until a probe reaches its server again."""
    fleet, local, _ = local_and_cloud
    local.stop()
    assert fleet.complete(asked_of("local")).served == Served("cloud", True)
    fell_back = "model 'local' could not answer"
    assert caplog.text.count(fell_back) == 1
    assert fleet.complete(asked_of("local")).served == Served("cloud", True)
    stream = fleet.stream(asked_of("local"))
    assert next(stream) == Served("cloud", True) and text_of(stream) == "From the cloud"
    assert caplog.text.count(fell_back) == 1  # not asked while unreachable
    local.start()
    fleet.check()  # the probe: reached, back in rotation
    assert fleet.complete(asked_of("local")).served == Served("local", False)


@pytest.mark.parametrize("failure", ["http500", "garbage"])
def test_a_model_that_refused_or_failed_a_request_is_asked_first_again(local_and_cloud, failure):
    """Its load, or what it answered, is the next request's to find."""
    fleet, local, _ = local_and_cloud
    local.fail_mode = failure
    assert fleet.complete(asked_of("local")).served == Served("cloud", True)
    local.fail_mode = None
    assert fleet.complete(asked_of("local")).served == Served("local", False)


def test_a_model_no_connection_reached_is_still_asked_when_its_fallbacks_fail(local_and_cloud):
    fleet, local, cloud = local_and_cloud
    local.stop()
    cloud.fail_mode = "http500"
    with pytest.raises(UpstreamError):
        fleet.complete(asked_of("local"))
    local.start()  # no probe has reached it yet: out of rotation still
    assert fleet.complete(asked_of("local")).served == Served("local", False)


def test_a_model_that_answers_is_not_marked_as_a_fallback(local_and_cloud):
    fleet, _, _ = local_and_cloud
    answer = fleet.complete(asked_of("local"))
    assert answer.text == "Hello, world!" and answer.served == Served("local", False)


def test_a_fallback_the_key_may_not_use_is_not_asked(local_and_cloud):
    fleet, local, cloud = local_and_cloud
    local.stop()
    with pytest.raises(UpstreamUnavailableError):
        fleet.complete(asked_of("local", may_use=lambda model_id: model_id == "local"))
    assert completions(cloud) == 0


def test_a_stream_that_fails_after_its_first_chunk_does_not_fall_back(local_and_cloud):
    fleet, local, cloud = local_and_cloud
    local.fail_mode = "truncated_stream"
    stream = fleet.stream(asked_of("local"))
    assert next(stream) == Served("local", False) and next(stream).text
    with pytest.raises(UpstreamError):
        list(stream)
    assert completions(cloud) == 0


def test_a_full_model_overflows_and_one_with_a_free_slot_does_not(tmp_path):
    with (
        FakeServerCpp("llamacpp", n_slots=1, token_delay=0.05) as local,
        FakeServerCpp("llamacpp", n_slots=2, tokens=["From", " the", " cloud"]) as cloud,
    ):
        catalog = parse_catalog(
            {
                "models": {
                    "local": {"upstreams": [local.url], "overflow": "cloud", "slots": 1},
                    "cloud": {"upstreams": [cloud.url]},
                }
            },
            "test",
        )
        with build_fleet(Settings(), NO_FILES, catalog) as fleet:
            free = fleet.complete(asked_of("local"))
            assert free.text == "Hello, world!" and not free.served.instead
            holding = fleet.stream(asked_of("local"))
            assert type(next(holding)) is Served and next(holding).text  # the slot is busy now
            full = fleet.complete(asked_of("local"))
            assert full.text == "From the cloud" and full.served == Served("cloud", True)
            list(holding)
            again = asked_of("local")
            assert fleet.complete(again).text == "Hello, world!"
            assert completions(local) == 3 and completions(cloud) == 1


def test_a_prompt_too_long_for_its_model_goes_to_its_context_fallback():
    with (
        FakeServerCpp("llamacpp", n_slots=1, n_ctx=64, prompt_tokens=100) as short,
        FakeServerCpp("llamacpp", n_slots=1, tokens=["A", " long", " read"]) as long,
        FakeServerCpp("llamacpp", n_slots=1) as other,
    ):
        catalog = parse_catalog(
            {
                "models": {
                    "short": {
                        "upstreams": [short.url],
                        "fallbacks": ["other"],
                        "context_fallbacks": ["long"],
                    },
                    "long": {"upstreams": [long.url]},
                    "other": {"upstreams": [other.url]},
                    "no-longer": {"upstreams": [short.url], "fallbacks": ["other"]},
                }
            },
            "test",
        )
        with build_fleet(Settings(), NO_FILES, catalog) as fleet:
            whole = fleet.complete(asked_of("short"))
            assert whole.text == "A long read" and whole.served == Served("long", True)
            stream = fleet.stream(asked_of("short"))
            assert next(stream) == Served("long", True) and text_of(stream) == "A long read"
            with pytest.raises(ContextLengthError):
                fleet.complete(asked_of("no-longer"))
            assert completions(other) == 0  # a fallback for failures, not for long prompts


def test_a_body_the_proxy_could_not_translate_goes_to_no_model_of_another_api(local_and_cloud):
    fleet, local, cloud = local_and_cloud
    unreadable = UntranslatableError("'messages[0].content[0].type' 'container_upload' …")
    asked = replace(asked_of("local"), verbatim=Verbatim("anthropic", {}, untranslated=unreadable))
    with pytest.raises(UntranslatableError):
        fleet.complete(asked)
    with pytest.raises(UntranslatableError):
        list(fleet.stream(asked))
    assert completions(local) == completions(cloud) == 0
    assert fleet.resolve("local").api == "" and fleet.resolve("nothing-of-that-name").api == ""


def test_the_longest_answer_of_a_model_is_the_most_it_or_one_in_its_place_gives():
    """Its default max_tokens, else its servers' context as they told it (an old server's
    /model.json, a current one's /props); the most of those of the models that may answer
    in its place, where theirs is known."""
    with (
        FakeServerCpp("powerinfer", n_slots=1, n_ctx=512) as old,
        FakeServerCpp("llamacpp", n_slots=1, n_ctx=2048) as current,
    ):
        models = {
            "old": {"upstreams": [old.url]},
            "falling": {"upstreams": [old.url], "fallbacks": ["current"]},
            "current": {"upstreams": [current.url]},
            "capped": {
                "upstreams": [old.url],
                "defaults": {"max_tokens": 100},
                "context_fallbacks": ["cloud"],
            },
            "cloud": {"backend": "openai", "upstreams": ["http://127.0.0.1:9/v1"]},
        }
        with build_fleet(Settings(), NO_FILES, parse_catalog({"models": models}, "t")) as fleet:
            assert fleet.longest_answer(fleet.resolve("old")) is None  # server not reached yet
            fleet.check()
            longest = [fleet.longest_answer(fleet.resolve(n)) for n in [*models, "nothing", 7]]
            assert longest == [512, 2048, 2048, 100, None, None, None]
