"""The models file's servers of tools: its ``[mcp_servers.NAME]`` tables, on stdio or over
HTTP, and its ``[web_search]``, the SearXNG instance searches go through and the bounds of the
web tools' calls; each checked once, a mistake named by its key, a credential never quoted."""

from __future__ import annotations

import re

import pytest
import tomllib

from proxy.config.catalog import CatalogError, WebSearchSpec
from proxy.config.modelsfile import parse_catalog

MODEL = '[models.m]\nupstreams = ["http://127.0.0.1:8080"]\n'


def read(table: str):
    return parse_catalog(tomllib.loads(MODEL + table), "models.toml").web_search


def test_a_models_file_without_web_search_has_none():
    assert read("") is None


@pytest.mark.parametrize(
    "table, spec",
    [
        ('[web_search]\nsearxng = "http://127.0.0.1:8888"', WebSearchSpec("http://127.0.0.1:8888")),
        (
            '[web_search]\nsearxng = "https://search.example/searxng/"\nmax_results = 20\n'
            'timeout = 2.5\nfetch = "any"\nmax_fetch_bytes = "64KiB"',
            WebSearchSpec("https://search.example/searxng", 20, 2.5, "any", 64 * 1024),
        ),
        (
            '[web_search]\nsearxng = "http://searxng:8080"\nmax_results = 1\ntimeout = 1\n'
            'fetch = "off"\nmax_fetch_bytes = 1024',
            WebSearchSpec("http://searxng:8080", 1, 1.0, "off", 1024),
        ),
    ],
)
def test_web_search_is_read_with_its_defaults(table, spec):
    assert read(table) == spec


def test_the_search_services_address_is_never_shown():
    assert "search.example" not in repr(read('[web_search]\nsearxng = "http://search.example"'))


URL = 'searxng = "http://127.0.0.1:8888"\n'


@pytest.mark.parametrize(
    "table, key, says",
    [
        ("web_search = 1", "web_search", "must be a table"),
        ("web_search = 'http://127.0.0.1:8888'", "web_search", "must be a table"),
        ("[web_search]\nmax_results = 3", "web_search", "needs searxng"),
        ("[web_search]\n" + URL + "engine = 'google'", "web_search.engine", "not a known key"),
        ("[web_search]\nsearxng = 3", "web_search.searxng", "an http\\(s\\) URL"),
        ("[web_search]\nsearxng = 'searxng:8080'", "web_search.searxng", "an http\\(s\\) URL"),
        ("[web_search]\nsearxng = 'ftp://h/'", "web_search.searxng", "an http\\(s\\) URL"),
        ("[web_search]\nsearxng = 'http:///x'", "web_search.searxng", "an http\\(s\\) URL"),
        ("[web_search]\nsearxng = 'http://h:port/'", "web_search.searxng", "an http\\(s\\) URL"),
        ("[web_search]\nsearxng = 'http://u:pw@h/'", "web_search.searxng", "user name or pass"),
        ("[web_search]\nsearxng = 'http://h/search?q=x'", "web_search.searxng", "without a query"),
        ("[web_search]\nsearxng = 'http://h/#top'", "web_search.searxng", "without a query"),
        ("[web_search]\n" + URL + "max_results = 0", "web_search.max_results", "1 to 20"),
        ("[web_search]\n" + URL + "max_results = 21", "web_search.max_results", "1 to 20"),
        ("[web_search]\n" + URL + "max_results = 2.0", "web_search.max_results", "whole"),
        ("[web_search]\n" + URL + "max_results = true", "web_search.max_results", "whole"),
        ("[web_search]\n" + URL + "timeout = 0", "web_search.timeout", "seconds"),
        ("[web_search]\n" + URL + "timeout = -1", "web_search.timeout", "seconds"),
        ("[web_search]\n" + URL + "timeout = '10s'", "web_search.timeout", "seconds"),
        ("[web_search]\n" + URL + "fetch = 'private'", "web_search.fetch", "public, any, off"),
        ("[web_search]\n" + URL + "fetch = true", "web_search.fetch", "public, any, off"),
        ("[web_search]\n" + URL + "max_fetch_bytes = 10", "web_search.max_fetch_bytes", "1024"),
        ("[web_search]\n" + URL + "max_fetch_bytes = 'lots'", "web_search.max_fetch_bytes", ""),
        ("[web_search]\n" + URL + "max_fetch_bytes = 1.5", "web_search.max_fetch_bytes", "size"),
    ],
)
def test_a_web_search_mistake_is_named(table, key, says):
    with pytest.raises(CatalogError, match=f"models.toml: {re.escape(key)}: .*{says}"):
        parse_catalog(tomllib.loads(table + "\n" + MODEL), "models.toml")


def test_a_password_in_the_url_is_never_repeated_in_the_message():
    with pytest.raises(CatalogError) as error:
        read("[web_search]\nsearxng = 'http://me:pw-secret@h/'")
    assert "pw-secret" not in str(error.value)


def test_mcp_servers_on_stdio_and_over_http(tmp_path):
    text = (
        MODEL
        + """
[mcp_servers.fs]
command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "./data"]
env = {NODE_OPTIONS = "--no-warnings"}
cwd = "work"
call_timeout = 5
start_timeout = 7
max_output_bytes = "64KiB"
idle_stop = 0
max_sessions = 4

[mcp_servers.search-2]
shared = true
url = "https://tools.example/mcp"
headers_env = {Authorization = "SEARCH_TOKEN"}
"""
    )
    catalog = parse_catalog(tomllib.loads(text), str(tmp_path / "models.toml"))
    fs, search = catalog.mcp_servers
    assert fs.command == (
        "npx",
        "-y",
        "@modelcontextprotocol/server-filesystem",
        str(tmp_path / "data"),
    )
    assert (fs.env, fs.cwd, fs.stdio) == (
        (("NODE_OPTIONS", "--no-warnings"),),
        str(tmp_path / "work"),
        True,
    )
    assert (fs.call_timeout, fs.start_timeout, fs.max_output_bytes, fs.idle_stop) == (
        5.0,
        7.0,
        64 * 1024,
        0.0,
    )
    assert search.start_timeout == 30.0
    assert (fs.shared, fs.max_sessions, search.shared, search.max_sessions) == (False, 4, True, 16)
    assert (search.url, search.headers_env, search.stdio) == (
        "https://tools.example/mcp",
        (("Authorization", "SEARCH_TOKEN"),),
        False,
    )
    assert (search.call_timeout, search.max_output_bytes, search.idle_stop) == (
        60.0,
        1 << 20,
        600.0,
    )
    assert catalog.mcp_server("search-2") is search and catalog.mcp_server("web") is None
    assert "tools.example" not in repr(search) and "no-warnings" not in repr(fs)


def test_a_models_file_without_mcp_servers_has_none():
    assert parse_catalog(tomllib.loads(MODEL), "models.toml").mcp_servers == ()


@pytest.mark.parametrize(
    "table, key, says",
    [
        ("[mcp_servers]\nfs = 1", "mcp_servers.fs", "must be a table"),
        ("mcp_servers = 1", "mcp_servers", "must be tables"),
        ('[mcp_servers."a b"]\ncommand = ["x"]', "mcp_servers.a b", "letters, digits"),
        ("[mcp_servers.fs]\ncwd = '.'", "mcp_servers.fs", "command = \\[...\\].*or url"),
        ("[mcp_servers.fs]\ncommand = ['x']\nurl = 'http://h/mcp'", "mcp_servers.fs", "one of"),
        ("[mcp_servers.fs]\ncommand = []", "mcp_servers.fs.command", "the program, then"),
        ("[mcp_servers.fs]\ncommand = 'npx x'", "mcp_servers.fs.command", "must be a list"),
        ("[mcp_servers.fs]\ncommand = ['x', '']", "mcp_servers.fs.command", "must be a list"),
        ("[mcp_servers.fs]\ncommand = ['x']\nport = 1", "mcp_servers.fs.port", "not a known key"),
        ("[mcp_servers.fs]\ncommand = ['x']\nenv = {A = 1}", "mcp_servers.fs.env.A", "string"),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nenv = {'A-B' = 'v'}",
            "mcp_servers.fs.env.A-B",
            "name",
        ),
        ("[mcp_servers.fs]\ncommand = ['x']\nenv = 'A=1'", "mcp_servers.fs.env", "a table"),
        ("[mcp_servers.fs]\ncommand = ['x']\ncwd = 1", "mcp_servers.fs.cwd", "a folder"),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nheaders_env = {A = 'B'}",
            "mcp_servers.fs.headers_env",
            "belongs to a server with a url",
        ),
        ("[mcp_servers.w]\nurl = 'http://h/mcp'\nenv = {A = 'b'}", "mcp_servers.w.env", "command"),
        ("[mcp_servers.w]\nurl = 'http://h/mcp'\ncwd = '.'", "mcp_servers.w.cwd", "command"),
        ("[mcp_servers.w]\nurl = 'ftp://h/mcp'", "mcp_servers.w.url", "http\\(s\\) URL"),
        ("[mcp_servers.w]\nurl = 'http:///mcp'", "mcp_servers.w.url", "http\\(s\\) URL"),
        ("[mcp_servers.w]\nurl = 3", "mcp_servers.w.url", "http\\(s\\) URL"),
        ("[mcp_servers.w]\nurl = 'http://u:pw@h/mcp'", "mcp_servers.w.url", "headers_env"),
        (
            "[mcp_servers.w]\nurl = 'http://h/mcp'\nheaders_env = {Authorization = 'sk-abc-1'}",
            "mcp_servers.w.headers_env.Authorization",
            "must be a string, as in",
        ),
        (
            "[mcp_servers.w]\nurl = 'http://h/mcp'\nheaders_env = {'Bad Header' = 'TOKEN'}",
            "mcp_servers.w.headers_env.Bad Header",
            "not a name",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\ncall_timeout = 0",
            "mcp_servers.fs.call_timeout",
            "seconds",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\ncall_timeout = true",
            "mcp_servers.fs.call_timeout",
            "seconds",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nshared = 'yes'",
            "mcp_servers.fs.shared",
            "true or false",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nmax_sessions = 0",
            "mcp_servers.fs.max_sessions",
            "from 1 to 1024",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nidle_stop = -1",
            "mcp_servers.fs.idle_stop",
            "0 = never",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nidle_stop = '1m'",
            "mcp_servers.fs.idle_stop",
            "seconds",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nmax_output_bytes = 10",
            "mcp_servers.fs.max_output_bytes",
            "at least 1024",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nmax_output_bytes = 'lots'",
            "mcp_servers.fs.max_output_bytes",
            "",
        ),
        (
            "[mcp_servers.fs]\ncommand = ['x']\nmax_output_bytes = 1.5",
            "mcp_servers.fs.max_output_bytes",
            "a size",
        ),
    ],
)
def test_an_mcp_servers_mistake_is_named(table, key, says):
    with pytest.raises(CatalogError, match=f"models.toml: {re.escape(key)}: .*{says}"):
        parse_catalog(tomllib.loads(table + "\n" + MODEL), "models.toml")


def test_a_credential_in_a_url_is_never_repeated_in_the_message():
    with pytest.raises(CatalogError) as error:
        parse_catalog(
            tomllib.loads(MODEL + "[mcp_servers.w]\nurl = 'http://me:pw-secret@h/'"), "m.toml"
        )
    assert "pw-secret" not in str(error.value)
