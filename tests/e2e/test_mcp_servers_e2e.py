"""The MCP servers the gateway runs, on real servers and no model: the reference filesystem
server on stdio over a folder of the test's, the reference "everything" server on stdio
and over streamable HTTP (both from npm, as ``.ci/agents.sh`` installs them), and a server
written with the ``mcp`` SDK that hangs, answers 100 MB, dies, changes its tools and tells
the trace context a call carried, on stdio and over HTTP. Each call goes through
:class:`~proxy.tools.manager.ToolServers` as the synchronous proxy makes it: listed,
checked, bounded in time and output, counted; each server started on first use, again
after it died, stopped when idle and at close, leaving no process behind."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config.catalog import McpServerSpec
from proxy.core.errors import (
    ToolArgumentsError,
    ToolNotFoundError,
    ToolServerError,
    ToolServerUnavailableError,
    ToolTimeoutError,
)
from proxy.ops.metrics import Metrics
from proxy.tools.manager import ToolServers
from tests.polling import wait_for
from tests.processes import free_port, stop_process

from . import agents

pytestmark = [pytest.mark.e2e, pytest.mark.mcp]

FAILURES = Path(__file__).with_name("mcpfailures.py")
MIB = 1024 * 1024
NOTES = "The gateway read this through an MCP server.\nSecond line: ünïcödé.\n"
SECRET = "Bearer sk-mcp-secret-4711"


def npm_server(name: str) -> str:
    """The command of a reference MCP server, as ``.ci/agents.sh`` installs it."""
    return str(agents.agent_binary(f"mcp-server-{name}"))


def serving(command: list, port: int, log: Path, env: dict) -> subprocess.Popen:
    """Start a server on ``port`` and wait until it takes connections."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )

    def listening() -> bool:
        assert process.poll() is None, log.read_text()[-2000:]
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, f"{command[0]} on port {port}", timeout=60)
    return process


@pytest.fixture(scope="module")
def everything_http(logs):
    port = free_port()
    process = serving(
        [npm_server("everything"), "streamableHttp"],
        port,
        logs / "mcp-everything-http.log",
        {"PORT": str(port)},
    )
    yield f"http://127.0.0.1:{port}/mcp"
    stop_process(process, 10)


@pytest.fixture(scope="module")
def failures_http(logs):
    port = free_port()
    process = serving(
        [sys.executable, str(FAILURES), "http", str(port)], port, logs / "mcp-failures.log", {}
    )
    yield f"http://127.0.0.1:{port}/mcp"
    stop_process(process, 10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    (folder / "notes.txt").write_text(NOTES, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(scope="module")
def servers(folder, everything_http, failures_http, logs, metrics):
    specs = (
        McpServerSpec("fs", command=(npm_server("filesystem"), str(folder))),
        McpServerSpec("everything", command=(npm_server("everything"),)),
        McpServerSpec(
            "everything-http", url=everything_http, headers_env=(("Authorization", "TOKEN"),)
        ),
        McpServerSpec("failures", command=(sys.executable, str(FAILURES)), call_timeout=30),
        McpServerSpec("failures-http", url=failures_http, call_timeout=30),
        McpServerSpec(
            "slow-start", command=(sys.executable, str(FAILURES), "slow-start"), call_timeout=1
        ),
    )
    manager = ToolServers(
        lambda: specs,
        environ={**os.environ, "TOKEN": SECRET},
        log_folder=str(logs),
        metrics=metrics,
    )
    yield manager
    manager.close()


def names(tools) -> set:
    return {tool.name for tool in tools}


def test_the_filesystem_server_lists_its_tools_and_reads_a_files_real_content(servers, folder):
    tools = {tool.name: tool for tool in servers.list_tools("fs")}
    assert {"read_text_file", "list_directory", "write_file"} <= set(tools)
    assert tools["read_text_file"].input_schema["properties"]["path"]["type"] == "string"
    assert tools["read_text_file"].description
    result = servers.call("fs", "read_text_file", {"path": str(folder / "notes.txt")})
    assert (result.text, result.is_error, result.truncated) == (NOTES, False, False)
    listing = servers.call("fs", "list_directory", {"path": str(folder)})
    assert "notes.txt" in listing.text


def test_a_path_outside_the_folder_is_refused_by_the_server_as_an_error_result(servers):
    result = servers.call("fs", "read_text_file", {"path": "/etc/hostname"})
    assert result.is_error and "outside allowed directories" in result.text


def test_what_does_not_fit_never_reaches_a_server(servers):
    with pytest.raises(ToolArgumentsError) as error:
        servers.call("fs", "read_text_file", {"path": 7})
    assert error.value.param == "arguments.path" and error.value.status == 400
    with pytest.raises(ToolNotFoundError, match="has no tool 'rm_rf'; its tools are .*read_text"):
        servers.call("fs", "rm_rf", {})
    with pytest.raises(ToolNotFoundError, match="no MCP server is declared as 'web'"):
        servers.call("web", "search", {})


@pytest.mark.parametrize("server", ["everything", "everything-http"])
def test_the_everything_server_answers_on_stdio_and_over_streamable_http(servers, server):
    assert {"echo", "get-sum"} <= names(servers.list_tools(server))
    assert servers.call(server, "echo", {"message": "héllo"}).text == "Echo: héllo"
    assert "5" in servers.call(server, "get-sum", {"a": 2, "b": 3}).text
    with pytest.raises(ToolArgumentsError, match=r"arguments\.message is required"):
        servers.call(server, "echo", {})


@pytest.mark.parametrize("server", ["failures", "failures-http"])
def test_a_traced_call_carries_its_trace_context_as_mcp_and_http_carry_it(servers, server):
    """In the call's ``_meta``, as MCP's trace propagation has it, and over HTTP in the
    request's headers too, where a server's HTTP tracing reads it; an untraced call,
    neither."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    told = json.loads(
        servers.call(server, "carried", {}, trace_context={"traceparent": parent}).text
    )
    assert told == {"meta": parent, "header": parent if server.endswith("http") else None}
    assert json.loads(servers.call(server, "carried", {}).text) == {"meta": None, "header": None}


@pytest.mark.parametrize("server", ["failures", "failures-http"])
def test_a_tool_that_never_answers_ends_at_the_bound_set_before_the_call(servers, server):
    servers.call(server, "echo", {"text": "started"})
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError, match=f"MCP server '{server}' did not finish") as error:
        servers.call(server, "hang", {}, timeout=1.5)
    assert time.monotonic() - started >= 1.5  # never before its bound
    assert error.value.status == 504 and "1.5 s" in error.value.message
    assert servers.call(server, "echo", {"text": "still here"}).text == "still here"


@pytest.mark.parametrize("server", ["failures", "failures-http"])
def test_an_answer_of_100_mb_is_cut_to_the_bound_as_it_is_read(servers, server):
    servers.call(server, "echo", {"text": "started"})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = servers.call(server, "huge", {"size": 100 * MIB})
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert result.truncated and not result.is_error
    assert result.text == "x" * MIB  # the server's default bound, max_output_bytes
    assert grown < 48 * 1024, f"the process grew by {grown} KiB reading it"
    assert servers.call(server, "echo", {"text": "after"}).text == "after"


@pytest.mark.parametrize("server", ["failures", "failures-http"])
def test_an_answer_no_cutting_can_bound_fails_its_call(servers, server):
    """200,000 blocks of one character each: no long string to cut, 6 MB of JSON."""
    with pytest.raises(ToolServerError) as error:
        servers.call(server, "many", {"count": 200_000})
    assert "message of more than 4194304 bytes" in error.value.message
    assert servers.call(server, "echo", {"text": "after"}).text == "after"


def test_a_server_that_dies_fails_its_call_and_is_started_again_on_the_next(servers):
    first = int(servers.call("failures", "pid", {}).text)
    with pytest.raises(ToolServerError, match=r"its process ended \(exit code 3\)") as error:
        servers.call("failures", "crash", {})
    assert error.value.status == 502
    second = int(servers.call("failures", "pid", {}).text)
    assert second != first and not psutil.pid_exists(first)


def test_a_tool_list_the_server_changes_is_listed_again(servers):
    assert "added_tool" not in names(servers.list_tools("failures"))
    assert servers.call("failures", "grow", {"name": "added_tool"}).text == "added added_tool"
    wait_for(lambda: "added_tool" in names(servers.list_tools("failures")), "the new listing")
    assert servers.call("failures", "added_tool", {}).text == "added_tool"


def test_the_calls_are_counted_by_server_and_tool(servers, metrics):
    servers.call("everything", "echo", {"message": "counted"})
    with pytest.raises(ToolTimeoutError):
        servers.call("failures", "hang", {}, timeout=0.5)
    servers.call("fs", "read_text_file", {"path": "/etc/hostname"})
    count = tool_counts(metrics)
    assert count("calls_total", server="everything", tool="echo") >= 1
    assert count("call_seconds_count", server="everything", tool="echo") >= 1
    assert count("errors_total", server="failures", tool="hang", error="tool_timeout") >= 1
    assert count("errors_total", server="fs", tool="read_text_file", error="tool_reported") >= 1


def test_an_idle_server_stops_and_none_outlives_the_manager(folder):
    specs = (
        McpServerSpec("fs", command=(npm_server("filesystem"), str(folder)), idle_stop=1),
        McpServerSpec("everything", command=(npm_server("everything"),), idle_stop=0),
        McpServerSpec("failures", command=(sys.executable, str(FAILURES))),
    )
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    manager = ToolServers(lambda: specs, environ=os.environ)
    started = {}  # pid: process, of every server the manager started
    try:
        for spec in specs:
            manager.list_tools(spec.name)
            for child in psutil.Process().children(recursive=True):
                if child.pid not in before:
                    started.setdefault(child.pid, child)
        assert len(started) >= 3
        wait_for(lambda: "fs" not in manager.running(), "the idle filesystem server's stop")
        assert set(manager.running()) == {"everything", "failures"}  # never idle: 0; not yet
        assert manager.call("fs", "read_text_file", {"path": str(folder / "notes.txt")}).text
        assert "fs" in manager.running()  # started again on its next use
    finally:
        manager.close()
    left = [child for child in started.values() if child.is_running()]
    assert not left, left
    after = {child.pid for child in psutil.Process().children(recursive=True)}
    assert after <= before


def test_a_credential_comes_from_the_environment_and_is_never_told(caplog):
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/mcp?key=in-the-query"
    specs = (
        McpServerSpec("down", url=url, headers_env=(("Authorization", "DOWN_TOKEN"),)),
        McpServerSpec("unset", url=url, headers_env=(("Authorization", "NOT_SET_TOKEN"),)),
    )
    manager = ToolServers(lambda: specs, environ={"DOWN_TOKEN": SECRET})
    caplog.set_level("DEBUG")
    try:
        with pytest.raises(ToolServerUnavailableError) as down:
            manager.list_tools("down")
        with pytest.raises(ToolServerUnavailableError) as unset:
            manager.call("unset", "echo", {})
    finally:
        manager.close()
    assert down.value.status == 503 and "'down' could not be reached" in down.value.message
    assert "is not configured right" in unset.value.message
    assert "NOT_SET_TOKEN" in str(unset.value.detail)  # the operator's, in the log only
    messages = [down.value.message, unset.value.message]  # what a client may be told
    logged = [str(down.value), str(unset.value), caplog.text]  # with the details
    for secret in (str(port), "127.0.0.1", "in-the-query"):
        assert not any(secret in text for text in messages), (secret, messages)
    assert not any("sk-mcp-secret" in text for text in messages + logged)


def test_a_server_slower_to_start_than_a_calls_bound_answers_its_first_call(servers):
    """Its start (two seconds) has its own bound, start_timeout; the call's is the second
    that follows it."""
    assert servers.call("slow-start", "echo", {"text": "up at last"}).text == "up at last"


def tool_counts(metrics: Metrics):
    """``count(name, **labels)``: the value of the tool metric ``oai_proxy_tool_<name>``
    with those labels in what ``metrics`` tells now (0 when it has none)."""
    scrape = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.scrape().decode())
        for sample in family.samples
    }

    def count(name: str, **labels) -> float:
        return scrape.get((f"oai_proxy_tool_{name}", tuple(sorted(labels.items()))), 0)

    return count


TOGGLE = "toggle-simulated-logging"  # the everything server's state: on for a session, or off


def toggled(manager: ToolServers, server: str, key: str) -> str:
    """Whether the session of ``key`` turned the everything server's logging on or off."""
    text = manager.call(server, TOGGLE, {}, key=key).text
    assert text.startswith(("Started", "Stopped")), text
    return text.split()[0]


@pytest.mark.parametrize("http", [False, True], ids=["stdio", "streamable-http"])
def test_each_key_has_its_own_session_of_a_server_unless_it_is_shared(everything_http, http):
    """A stateful server's state (the everything server's logging, on or off) never passes
    from one key to another; a shared server's does; the least recently used of a server's
    ``max_sessions`` sessions is stopped to make room for another key's."""
    where = {"url": everything_http} if http else {"command": (npm_server("everything"),)}
    specs = (
        McpServerSpec("own", max_sessions=2, **where),
        McpServerSpec("shared", shared=True, **where),
    )
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    manager = ToolServers(lambda: specs, environ=os.environ)
    try:
        assert [toggled(manager, "own", key) for key in ("alice", "bob", "alice", "alice")] == [
            "Started", "Started", "Stopped", "Started"
        ]  # fmt: skip
        assert [toggled(manager, "shared", key) for key in ("alice", "bob")] == [
            "Started", "Stopped"
        ]  # fmt: skip
        if not http:  # a process per key of "own", one for "shared"
            started = psutil.Process().children(recursive=True)
            assert len([child for child in started if child.pid not in before]) >= 3
        assert toggled(manager, "own", "carol") == "Started"  # bob's is the least recently used
        assert toggled(manager, "own", "alice") == "Stopped"  # alice's session went on…
        assert toggled(manager, "own", "bob") == "Started"  # …bob's was stopped: a new one
    finally:
        manager.close()
    after = {child.pid for child in psutil.Process().children(recursive=True)}
    assert after <= before
