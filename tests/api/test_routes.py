"""Every API is registered in one place: its routes, its errors' shape and its line on the
page come from the one value its module exports."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.routing import Map, Rule

from proxy import app as application
from proxy.api.state import Routes, endpoints
from proxy.core.errors import InvalidRequestError

PAGE = {"Accept": "text/html"}


def rules(*specs) -> list:
    """Rules as a URL map binds them: (endpoint, path, methods)."""
    mapped = Map(
        [Rule(path, endpoint=endpoint, methods=methods) for endpoint, path, methods in specs]
    )
    return list(mapped.iter_rules())


def group(name: str, summary: str = "") -> Routes:
    return Routes(Blueprint(name, __name__), summary or name)


def test_a_path_served_with_and_without_v1_is_listed_once():
    listed = endpoints(
        rules(
            ("a.chat", "/v1/chat", ["POST"]),
            ("a.chat", "/chat", ["POST"]),
            ("a.tags", "/api/tags", ["GET", "HEAD"]),
            ("b.chat", "/chat", ["POST"]),
        ),
        [group("a"), group("b")],
    )
    assert listed == [("a", ["POST /v1/chat", "GET /api/tags"]), ("b", ["POST /chat"])]


def test_methods_are_named_as_clients_send_them():
    listed = endpoints(rules(("a.item", "/v1/items/<id>", ["GET", "DELETE"])), [group("a")])
    assert listed == [("a", ["GET/DELETE /v1/items/<id>"])]


def test_the_page_lists_every_route_the_app_serves(client):
    html = client.get("/", headers=PAGE).get_data(as_text=True)
    for rule in client.application.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        shown = (
            rule.rule
            if rule.rule.startswith("/v1/")
            or not any(
                other.rule == "/v1" + rule.rule for other in client.application.url_map.iter_rules()
            )
            else "/v1" + rule.rule
        )
        assert shown.replace("<", "&lt;").replace(">", "&gt;") in html, rule.rule
    assert "/v1/rerank" in html and "/admin/models" in html


def test_a_new_client_api_is_one_value_added_in_one_place(make_client, monkeypatch):
    echo = Blueprint("echo", __name__)

    @echo.post("/v1/echo")
    def echoed():
        raise InvalidRequestError("nothing to echo", param="text")

    shape = {"echo": lambda error: {"echo_error": {"field": error.param}}}
    monkeypatch.setattr(
        application,
        "ROUTES",
        (*application.ROUTES, Routes(echo, "Echo, for the test", shape["echo"])),
    )
    client = make_client()
    answer = client.post("/v1/echo", json={})
    assert answer.status_code == 400 and answer.json == {"echo_error": {"field": "text"}}
    assert (
        client.post("/v1/chat/completions", json={"messages": 3}).json["error"]["param"]
        == "messages"
    )  # the other APIs keep their own shape
    html = client.get("/", headers=PAGE).get_data(as_text=True)
    assert "Echo, for the test" in html and "POST /v1/echo" in html
