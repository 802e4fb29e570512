"""The key gate on every route the app has, and one tenant's key against another's models
and stored responses: nothing reaches a model, a list or a stored answer without the key
that may."""

from __future__ import annotations

import base64
import io
import os
import re

import pytest
import requests
from PIL import Image

from proxy.app import create_app
from proxy.config.runtime import Runtime
from proxy.config.settings import Settings

from .conftest import ALICE, BOB

pytestmark = pytest.mark.hostile

PUBLIC = {"/", "/health", "/status", "/playground", "/metrics", "/static/<path:filename>"}
SAMPLES = {
    "<id>": "resp_0123456789abcdef",
    "<name>": "tiny",
    "<any(push, create, copy):action>": "push",
}


def routes() -> list:
    """``(method, path)`` of every API route of the app (the pages and the admin API aside)."""
    app = create_app(Settings.of(), Runtime(cache_dir=os.devnull, environ=os.environ))
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC or rule.rule.startswith("/admin/"):
            continue
        path = re.sub(r"<[^>]+>", lambda match: SAMPLES[match.group(0)], rule.rule)
        found += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


ROUTES = routes()
GENERATING = {  # a body naming a model, for each route that runs one
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"prompt": "hi", "max_tokens": 2},
    "/v1/messages": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/messages/count_tokens": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"input": "hi", "max_output_tokens": 16},
    "/v1/responses/input_tokens": {"input": "hi"},
    "/v1/embeddings": {"input": "hi"},
    "/v1/rerank": {"query": "hi", "documents": ["a"]},
    "/api/chat": {"messages": [{"role": "user", "content": "hi"}], "stream": False},
    "/api/generate": {"prompt": "hi", "stream": False},
    "/api/embed": {"input": "hi"},
    "/api/show": {},
}


NOT_OFFERED = {  # what the gateway's server does not do, said of the model by name
    "/v1/embeddings": 501,
    "/api/embed": 501,
    "/v1/rerank": 400,
}
COUNTS = {"/v1/messages/count_tokens", "/v1/responses/input_tokens"}


def reached(answer, path: str, model: str) -> bool:
    """Whether ``answer`` is ``model``'s own: its answer under its name, its prompt's count,
    its details, or its server's word, naming it, that it does not embed or rerank."""
    body = answer.json()
    if path in NOT_OFFERED:
        return answer.status_code == NOT_OFFERED[path] and f"'{model}'" in answer.text
    if answer.status_code != 200:
        return False
    if path in COUNTS:
        return body["input_tokens"] > 0
    if path == "/api/show":
        return "tiny-llama" in body["template"]  # the model's own template
    return body["model"] == model


def send(gateway, method: str, path: str, key: str = "", body: object = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(
        method, gateway.url + path, json={} if body is None else body, headers=headers, timeout=30
    )


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[" ".join(r) for r in ROUTES])
def test_every_api_route_needs_a_key(gateway, method, path):
    for key in ("", "sk-nobody"):
        answer = send(gateway, method, path, key)
        assert answer.status_code == 401, (key, answer.text[:200])


@pytest.mark.parametrize("path", sorted(GENERATING))
def test_a_key_reaches_only_its_own_models(gateway, path):
    for key, model, status in (
        (ALICE, "secret", 404),
        (BOB, "tiny", 403),
        (ALICE, "tiny", 200),
        (BOB, "secret", 200),
    ):
        field = "model" if path != "/api/show" else "name"
        answer = send(gateway, "POST", path, key, {**GENERATING[path], field: model})
        if status == 200:  # a model the key may use: the model's own answer
            assert reached(answer, path, model), (key, model, answer.text[:200])
        else:
            assert answer.status_code == status, (key, model, answer.text[:200])


def test_lists_show_each_key_its_own_models(gateway):
    for key, own in ((ALICE, ["tiny"]), (BOB, ["secret"])):
        models = send(gateway, "GET", "/v1/models", key).json()["data"]
        assert [model["id"] for model in models] == own
        tags = send(gateway, "GET", "/api/tags", key).json()["models"]
        assert [tag["name"] for tag in tags] == [f"{name}:latest" for name in own]


def test_an_image_for_a_model_the_key_may_not_use_is_refused_first(gateway):
    picture = io.BytesIO()
    Image.new("RGB", (8, 8)).save(picture, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    answer = send(
        gateway,
        "POST",
        "/v1/chat/completions",
        ALICE,
        {
            "model": "secret",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": uri}}]}
            ],
        },
    )
    assert answer.status_code == 404


def test_one_tenant_cannot_read_anothers_stored_responses(gateway):
    stored = send(
        gateway,
        "POST",
        "/v1/responses",
        ALICE,
        {"model": "tiny", "input": "alices-private-words", "max_output_tokens": 16, "store": True},
    )
    assert stored.status_code == 200, stored.text[:300]
    path = f"/v1/responses/{stored.json()['id']}"
    assert send(gateway, "GET", path, ALICE).status_code == 200
    for method, where in (("GET", path), ("GET", path + "/input_items"), ("DELETE", path)):
        assert send(gateway, method, where, BOB).status_code == 404
    follow_up = send(
        gateway,
        "POST",
        "/v1/responses",
        BOB,
        {
            "model": "secret",
            "input": "and?",
            "max_output_tokens": 16,
            "previous_response_id": stored.json()["id"],
        },
    )
    assert follow_up.status_code == 404 and "alices-private-words" not in follow_up.text
    assert send(gateway, "GET", path, ALICE).status_code == 200  # still there


@pytest.mark.parametrize("path", ["/admin/models", "/admin/usage", "/admin/models/tiny/log"])
def test_a_tenants_key_is_not_the_admins(gateway, path):
    for key in ("", ALICE, BOB):
        assert (
            requests.get(
                gateway.url + path,
                timeout=10,
                headers={"Authorization": f"Bearer {key}"} if key else {},
            ).status_code
            == 401
        )
