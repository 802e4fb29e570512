"""The models file's ``[web_search]``: the SearXNG instance searches go through and the
bounds of the web tools' calls, checked once, a mistake named by its key."""

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
