"""What a model on a public API's server may add in the models file: headers (their values
given or read from the environment), timeouts and filters; and the message each mistake
gets, which never quotes a header's value."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from proxy.config.catalog import CatalogError, Filters, Timeouts
from proxy.config.modelsfile import parse_catalog

OPENAI = "[models.a]\nbackend = 'openai'\nupstreams = ['http://a/v1']\n"
ANTHROPIC = "[models.a]\nbackend = 'anthropic'\nupstreams = ['http://a']\n"
SECRET = "s3cret-value"


def model(text: str):
    return parse_catalog(tomllib.loads(text), "models.toml").models[0]


def test_headers_timeouts_and_filters():
    spec = model(
        OPENAI
        + """
headers = { "HTTP-Referer" = "https://example.org", "X-Title" = "Team chat" }
headers_env = { "OpenAI-Organization" = "ORG_ID" }
timeouts = { connect = 2, read = 90.5, first_byte = 30 }
[models.a.filters]
strip = ["top_k", "min_p"]
set = { temperature = 0.2, chat_template_kwargs = { enable_thinking = false } }
"""
    )
    assert spec.headers == (("HTTP-Referer", "https://example.org"), ("X-Title", "Team chat"))
    assert spec.headers_env == (("OpenAI-Organization", "ORG_ID"),)
    assert spec.timeouts == Timeouts(connect=2.0, read=90.5, first_byte=30.0)
    assert spec.filters == Filters(
        ("top_k", "min_p"),
        (("temperature", 0.2), ("chat_template_kwargs", {"enable_thinking": False})),
    )
    assert "example.org" not in repr(spec)  # a header's value is no spec's repr


def test_none_given_changes_nothing():
    spec = model(OPENAI)
    assert (spec.headers, spec.headers_env) == ((), ())
    assert spec.timeouts == Timeouts() and not spec.filters


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "[models.a]\nupstreams = ['http://a']\nheaders = { X-A = 'b' }",
            'models.a.headers: belongs to a model of backend = "openai" or "anthropic"',
            id="headers-on-servercpp",
        ),
        pytest.param(
            "[models.a]\nupstreams = ['http://a']\ntimeouts = { read = 5 }",
            "models.a.timeouts: belongs to a model of backend",
            id="timeouts-on-servercpp",
        ),
        pytest.param(
            "[models.a]\nupstreams = ['http://a']\nfilters = { strip = ['top_k'] }",
            "models.a.filters: belongs to a model of backend",
            id="filters-on-servercpp",
        ),
        pytest.param(
            OPENAI + "headers = 'X-A: b'",
            'models.a.headers: must be a table: { "Header-Name" = ... }',
            id="headers-not-a-table",
        ),
        pytest.param(
            OPENAI + "headers = { 'X A' = 'b' }",
            "models.a.headers.X A: is not a header name",
            id="name-with-a-space",
        ),
        pytest.param(
            OPENAI + "headers = { '' = 'b' }",
            "models.a.headers.: is not a header name",
            id="empty-name",
        ),
        pytest.param(
            OPENAI + "headers = { authorization = 'Bearer x' }",
            "models.a.headers.authorization: carries the upstream's key, which the proxy "
            "writes itself: name the variable that holds it in upstream_key_env",
            id="authorization",
        ),
        pytest.param(
            OPENAI + "headers_env = { Authorization = 'TOKEN' }",
            "models.a.headers_env.Authorization: carries the upstream's key",
            id="authorization-from-the-environment",
        ),
        pytest.param(
            ANTHROPIC + "headers = { X-Api-Key = 'k' }",
            "models.a.headers.X-Api-Key: carries the upstream's key",
            id="anthropic-x-api-key",
        ),
        pytest.param(
            ANTHROPIC + "headers = { anthropic-version = '2024-01-01' }",
            "models.a.headers.anthropic-version: is written by the proxy itself: the version",
            id="anthropic-version",
        ),
        *(
            pytest.param(
                OPENAI + f"headers = {{ {name} = 'x' }}",
                f"models.a.headers.{name}: is written by the proxy itself: it frames every",
                id=name,
            )
            for name in (
                "Host",
                "Content-Length",
                "content-type",
                "Transfer-Encoding",
                "Connection",
            )
        ),
        pytest.param(
            OPENAI + "headers = { X-A = 'b', x-a = 'c' }",
            "models.a.headers.x-a: is given twice (a header's name is the same in any case)",
            id="twice-in-any-case",
        ),
        pytest.param(
            OPENAI + "headers = { X-A = 'b' }\nheaders_env = { X-A = 'A' }",
            "models.a.headers_env.X-A: is given twice",
            id="given-and-from-the-environment",
        ),
        pytest.param(
            OPENAI + f'headers = {{ X-A = "{SECRET}\\r\\nX-B: c" }}',
            "models.a.headers.X-A: must be a string without line breaks or other control",
            id="line-break-in-a-value",
        ),
        pytest.param(
            OPENAI + "headers = { X-A = 3 }",
            "models.a.headers.X-A: must be a string without line breaks",
            id="value-not-a-string",
        ),
        pytest.param(
            OPENAI + "headers_env = { X-A = 'NOT A NAME' }",
            "models.a.headers_env.X-A: must name an environment variable",
            id="env-not-a-variable",
        ),
        pytest.param(
            OPENAI + "timeouts = 30",
            "models.a.timeouts: must be a table: { connect = <s>, read = <s>, first_byte = <s> }",
            id="timeouts-not-a-table",
        ),
        pytest.param(
            OPENAI + "timeouts = { total = 30 }",
            "models.a.timeouts.total: is not a known key; known here: connect, first_byte, read",
            id="unknown-timeout",
        ),
        *(
            pytest.param(
                OPENAI + f"timeouts = {{ {name} = {value} }}",
                f"models.a.timeouts.{name}: must be a positive number of seconds, got {shown}",
                id=f"{name}={value}",
            )
            for name, value, shown in (
                ("connect", "0", "0"),
                ("read", "-1.5", "-1.5"),
                ("first_byte", "'30'", "'30'"),
                ("read", "true", "True"),
                ("read", "inf", "inf"),
                ("connect", "nan", "nan"),
            )
        ),
        pytest.param(
            OPENAI + "filters = ['top_k']",
            "models.a.filters: must be a table: { strip = [<field>, ...], set = {",
            id="filters-not-a-table",
        ),
        pytest.param(
            OPENAI + "filters = { strip_params = 'top_k' }",
            "models.a.filters.strip_params: is not a known key; known here: set, strip",
            id="unknown-filter",
        ),
        pytest.param(
            OPENAI + "filters = { strip = 'top_k' }",
            "models.a.filters.strip: must be a list of field names",
            id="strip-not-a-list",
        ),
        pytest.param(
            OPENAI + "filters = { strip = ['top_k', 'top_k'] }",
            "models.a.filters.strip: names a field twice",
            id="strip-twice",
        ),
        pytest.param(
            OPENAI + "filters = { set = ['temperature'] }",
            "models.a.filters.set: must be a table of fields and the values they are sent with",
            id="set-not-a-table",
        ),
        *(
            pytest.param(
                OPENAI + f"filters = {{ strip = ['{name}'] }}",
                f"models.a.filters.strip: '{name}' is the proxy's to write: model, messages, "
                "stream, stream_options are",
                id=f"strip-{name}",
            )
            for name in ("model", "messages", "stream", "stream_options")
        ),
        pytest.param(
            OPENAI + "filters = { set = { model = 'other' } }",
            "models.a.filters.set.model: 'model' is the proxy's to write",
            id="set-model",
        ),
        pytest.param(
            OPENAI + "filters = { set = { stream = false } }",
            "models.a.filters.set.stream: 'stream' is the proxy's to write",
            id="set-stream",
        ),
        pytest.param(
            OPENAI + "filters = { strip = ['top_k'], set = { top_k = 1 } }",
            "models.a.filters.set.top_k: 'top_k' is stripped too: give it in one of them",
            id="stripped-and-set",
        ),
        pytest.param(
            ANTHROPIC + "filters = { strip = ['max_tokens'] }",
            "models.a.filters.strip: 'max_tokens' cannot be left out: the API requires it",
            id="anthropic-max-tokens",
        ),
        pytest.param(
            OPENAI + "defaults = { top_k = 40 }\nfilters = { strip = ['top_k'] }",
            "models.a.filters.strip: 'top_k' has a default too (defaults.top_k): give it in one",
            id="stripped-default",
        ),
        pytest.param(
            OPENAI + "defaults = { temperature = 0.7 }\nfilters = { set = { temperature = 0.2 } }",
            "models.a.filters.set.temperature: 'temperature' has a default too",
            id="set-default",
        ),
        pytest.param(
            OPENAI + "filters = { set = { when = 2024-01-01 } }",
            "models.a.filters.set.when: must be a JSON value (no dates, no inf or nan)",
            id="a-date",
        ),
        pytest.param(
            OPENAI + "filters = { set = { bias = { a = [nan] } } }",
            "models.a.filters.set.bias: must be a JSON value",
            id="nan-deep-inside",
        ),
    ],
)
def test_mistakes_name_the_key_and_never_a_headers_value(text, message):
    with pytest.raises(CatalogError) as error:
        model(text)
    assert str(error.value).startswith(f"models.toml: {message}")
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_the_other_apis_key_headers_are_the_operators(backend):
    """A key under another API's header is no key the proxy writes to this one (llama-server
    and some gateways read ``X-Api-Key`` beside ``Authorization``)."""
    other = "X-Api-Key" if backend == "openai" else "Authorization"
    spec = model(
        f"[models.a]\nbackend = '{backend}'\nupstreams = ['http://a']\n"
        f"headers_env = {{ {other} = 'A_KEY' }}"
    )
    assert spec.headers_env == ((other, "A_KEY"),)


def test_the_api_requires_max_tokens_but_a_filter_may_set_it():
    assert model(ANTHROPIC + "filters = { set = { max_tokens = 3 } }").filters.set == (
        ("max_tokens", 3),
    )
