"""The manager's own rules, with no server run: which servers it knows (as the catalog says
now), a call's time bound, and that nothing runs until a tool is first used."""

from __future__ import annotations

import threading

import pytest

from proxy.app import create_app
from proxy.config.catalog import McpServerSpec
from proxy.config.settings import Settings
from proxy.core.errors import ToolNotFoundError
from proxy.tools.manager import ToolServers, _bound
from tests.runtimes import runtime_in

SPEC = McpServerSpec("fs", command=("mcp-server-filesystem", "/data"), call_timeout=30)


@pytest.mark.parametrize(
    "timeout, bound", [(None, 30.0), (5, 5.0), (60, 30.0), (0.25, 0.25), (-1, 0.0)]
)
def test_a_calls_bound_is_the_callers_within_its_servers(timeout, bound):
    assert _bound(SPEC, timeout) == bound


def test_the_servers_are_the_ones_declared_now_and_an_unknown_one_is_named():
    declared = [SPEC]
    manager = ToolServers(lambda: declared, environ={})
    assert manager.names() == ("fs",)
    declared.append(McpServerSpec("web", url="http://127.0.0.1:9/mcp"))
    assert manager.names() == ("fs", "web")
    with pytest.raises(ToolNotFoundError, match="no MCP server is declared as 'nope'") as error:
        manager.call("nope", "read", {})
    assert error.value.status == 400 and error.value.param == "server_label"
    assert manager.running() == ()
    manager.close()


def test_the_app_knows_the_models_files_servers_and_runs_nothing_for_them(tmp_path):
    models = tmp_path / "models.toml"
    models.write_text(
        '[models.m]\nupstreams = ["http://127.0.0.1:9"]\n'
        '[mcp_servers.fs]\ncommand = ["mcp-server-filesystem", "/data"]\n'
    )
    app = create_app(Settings.of(config=str(models)), runtime_in(tmp_path))
    state = app.extensions["proxy"]
    try:
        assert state.tools.has("fs") and not state.tools.has("web")
        assert not any(thread.name == "mcp-tools" for thread in threading.enumerate())
    finally:
        state.router.close()
