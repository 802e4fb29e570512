"""The models list and the health check."""

from __future__ import annotations

import pytest

from proxy.core.errors import UpstreamUnavailableError
from tests.fakes.backend import FakeBackend


@pytest.mark.parametrize("path", ["/v1/models", "/models"])
def test_models(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.get_json()
    assert body["object"] == "list"
    assert [(model["id"], model["object"]) for model in body["data"]] == [("fake-model", "model")]
    assert type(body["data"][0]["created"]) is int
    assert isinstance(body["data"][0]["owned_by"], str)


@pytest.mark.parametrize(
    ("error", "status", "state"),
    [
        pytest.param(None, 200, "ok", id="up"),
        pytest.param(UpstreamUnavailableError("down"), 503, "unavailable", id="down"),
    ],
)
def test_health(make_client, error, status, state):
    client = make_client(FakeBackend(error=error), admin_key="adm")
    response = client.get("/health")
    assert (response.status_code, response.get_json()) == (status, {"status": state})
    detailed = client.get("/health", headers={"Authorization": "Bearer adm"})
    assert detailed.status_code == status
    assert detailed.get_json()["status"] == state and detailed.get_json()["backend"] == "fake"


def test_health_is_public_even_with_keys(make_client):
    response = make_client(api_key=("k1",)).get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
    keyed = make_client(api_key=("k1",)).get("/health", headers={"Authorization": "Bearer k1"})
    assert keyed.get_json() == {"status": "ok"}  # a client key is no admin key
