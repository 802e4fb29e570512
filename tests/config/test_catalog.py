"""The models file: what it may say, and the message a mistake gets."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

from proxy.config.build import from_settings
from proxy.config.catalog import CatalogError, UpstreamSpec, with_defaults, with_pulled
from proxy.config.hubref import HubReference
from proxy.config.modelsfile import parse_catalog, read_catalog
from proxy.config.modeltable import id_problem
from proxy.config.price import Price
from proxy.config.settings import Settings
from proxy.core.types import GenerationRequest, Sampling

GOOD = """
default = "qwen"

[models.qwen]
aliases = ["gpt-3.5-turbo", "qwen-chat"]
upstreams = ["http://127.0.0.1:8080/", {url = "http://10.0.0.2:8080", slots = 2}]
slots = 4
chat_template = "chatml"
[models.qwen.defaults]
temperature = 0.2
max_tokens = 256
stop = ["<|im_end|>"]
cache_prompt = true

[models.old]
upstreams = ["http://127.0.0.1:9000"]
affinity = false
capture = true
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return str(path)


def test_a_complete_file(tmp_path):
    catalog = read_catalog(write(tmp_path, GOOD))
    qwen, old = catalog.models
    assert catalog.default == "qwen" and not catalog.catch_all
    assert qwen.aliases == ("gpt-3.5-turbo", "qwen-chat")
    assert qwen.upstreams == (
        UpstreamSpec("http://127.0.0.1:8080", 4),
        UpstreamSpec("http://10.0.0.2:8080", 2),
    )
    assert qwen.chat_template == "chatml" and qwen.affinity and not old.affinity
    assert old.capture and not qwen.capture
    assert qwen.defaults.sampling.temperature == 0.2 and qwen.defaults.max_tokens == 256
    assert qwen.defaults.stop == ("<|im_end|>",) and qwen.defaults.cache_prompt is True
    assert old.defaults is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen", "qwen"),
        ("gpt-3.5-turbo", "qwen"),
        ("old", "old"),
        (None, "qwen"),
        ("", "qwen"),
        ("qwen:latest", "qwen"),
        ("gpt-3.5-turbo:7b", "qwen"),
        ("old:q4", "old"),
    ],
)
def test_names_and_aliases(tmp_path, name, expected):
    assert read_catalog(write(tmp_path, GOOD)).find(name).id == expected


def test_unknown_names_find_nothing_unless_catch_all(tmp_path):
    assert read_catalog(write(tmp_path, GOOD)).find("gpt-4") is None
    assert read_catalog(write(tmp_path, GOOD)).find("gpt-4:latest") is None
    catch_all = read_catalog(write(tmp_path, "catch_all = true\n" + GOOD))
    assert catch_all.find("gpt-4").id == "qwen"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("default = ", "not valid TOML", id="syntax"),
        pytest.param(
            "x = 1\n[models.a]\nupstreams=['http://a']",
            "x: is not a known key",
            id="unknown-top-key",
        ),
        pytest.param("", "models: needs at least one", id="no-models"),
        pytest.param(
            "[models.a]\n", "models.a.upstreams: needs at least one server URL", id="no-upstreams"
        ),
        pytest.param(
            "[models.a]\nupstreams=['ftp://a']",
            "models.a.upstreams[0]: must be an http(s)",
            id="bad-url",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a', 'http://a/']",
            "names the same URL twice",
            id="same-url",
        ),
        pytest.param(
            "[models.a]\nupstreams=[{url='http://a', slots=-1}]",
            "models.a.upstreams[0].slots: must be a whole number",
            id="bad-slots",
        ),
        pytest.param(
            "[models.a]\nupstream=['http://a']",
            "models.a.upstream: is not a known key",
            id="typo-key",
        ),
        pytest.param(
            "[models.a]\nbackend='vllm'\nupstreams=['http://a']",
            "models.a.backend: must be one of servercpp, chatglm",
            id="bad-backend",
        ),
        pytest.param(
            "[models.a]\nbackend='chatglm'",
            "a chatglm model needs model =",
            id="chatglm-without-file",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\n[models.a.defaults]\ntemperature=5",
            "models.a.defaults.temperature: 'temperature' must be between 0 and 2",
            id="bad-default",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\n[models.a.defaults]\nprompt='x'",
            "models.a.defaults.prompt: is not a request field",
            id="undefaultable",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\n[models.b]\naliases=['a']\nupstreams=['http://b']",
            "the name 'a' is already taken by models.a",
            id="alias-clash",
        ),
        pytest.param(
            "default='zzz'\n[models.a]\nupstreams=['http://a']",
            "default: must name a model; the ids are a",
            id="bad-default-model",
        ),
        pytest.param(
            "catch_all='yes'\n[models.a]\nupstreams=['http://a']",
            "catch_all: must be true or false",
            id="bad-catch-all",
        ),
        pytest.param(
            "max_running=-1\n[models.a]\nmodel='a.gguf'",
            "max_running: must be a whole number",
            id="bad-max-running",
        ),
        pytest.param(
            "[models.a]\ncmd='server -m x'",
            "models.a.cmd: must be a command line with ${PORT}",
            id="cmd-without-port",
        ),
        pytest.param(
            "[models.a]\nmodel='a.gguf'\nupstreams=['http://a']",
            "models.a.upstreams: a model the proxy runs",
            id="managed-with-upstreams",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nttl=5",
            "models.a.ttl: belongs to a model the proxy runs",
            id="ttl-without-server",
        ),
        pytest.param(
            "[models.a]\nmodel='a.gguf'\nttl=-1", "models.a.ttl: must be a number", id="bad-ttl"
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\ncapture='yes'",
            "models.a.capture: must be true or false",
            id="bad-capture",
        ),
        pytest.param(
            "[models.a]\nmodel='a.gguf'\nargs='-c 8'",
            "models.a.args: must be a list",
            id="args-string",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nfallbacks=['b']",
            "models.a.fallbacks: 'b' is not another model's name",
            id="fallback-unknown",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\naliases=['x']\nfallbacks=['x']",
            "models.a.fallbacks: 'x' is not another model's name",
            id="fallback-itself",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={input=-1}",
            "models.a.price.input: must be US dollars per million tokens",
            id="price-negative",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={cached=1}",
            "models.a.price.cached: is not a known key",
            id="price-unknown",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={cached_input='cheap'}",
            "models.a.price.cached_input: must be US dollars per million tokens",
            id="price-cached-input",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={store=-1}",
            "models.a.price.store: must be US dollars per 1,000 stored completions",
            id="price-store-negative",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={tiers={default={input=1}}}",
            "models.a.price.tiers.default: is the model's own price",
            id="price-tier-default",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={tiers={flex={tiers={}}}}",
            "models.a.price.tiers.flex.tiers: is not a known key",
            id="price-tier-of-a-tier",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={tiers={flex={audio_input='x'}}}",
            "models.a.price.tiers.flex.audio_input: must be US dollars per million tokens",
            id="price-tier-value",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={image={}}",
            "models.a.price.image: must name one size at least",
            id="price-image-no-size",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={image={big=1}}",
            "models.a.price.image.big: must be a size, WIDTHxHEIGHT in pixels",
            id="price-image-not-a-size",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={image={'512x512'='x'}}",
            "models.a.price.image.512x512: must be US dollars per picture",
            id="price-image-size-value",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={image=[1]}",
            "models.a.price.image: must be US dollars per picture",
            id="price-image-list",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nprice={tiers=['flex']}",
            "models.a.price.tiers: must be a table of service tiers' prices",
            id="price-tiers-list",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nprice={input=1}\n"
            "filters={set={service_tier='priority'}}",
            "models.a.filters.set.service_tier: the model's price names no service tier",
            id="filter-sets-an-unpriced-tier",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\n"
            "price={tiers={flex={}}}\nfilters={set={service_tier='flex',store=true}}",
            "models.a.filters.set.store: the model's price names no store",
            id="filter-sets-an-unpriced-store-at-its-tier",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\n"
            "filters={set={modalities=['text','audio']}}",
            "models.a.filters.set.modalities: 'modalities' must be [\"text\"]: this gateway "
            "answers in text",
            id="filter-asks-for-audio-output",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\noverflow='a'",
            "models.a.overflow: 'a' is not another model's name",
            id="overflow-itself",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\noverflow_after=-1",
            "models.a.overflow_after: must be a whole number",
            id="overflow-after-negative",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nwarm=['b']",
            "models.a.warm: 'b' is not another model's name",
            id="warm-unknown",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nfallbacks='b'",
            "models.a.fallbacks: must be a list of model names",
            id="fallback-string",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'",
            "models.a.upstreams: needs at least one server URL",
            id="openai-no-upstreams",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nchat_template='chatml'",
            "models.a.chat_template: has no meaning for a model of backend = 'openai'",
            id="openai-template",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nmodel='a.gguf'",
            "models.a.model: has no meaning for a model of backend = 'openai'",
            id="openai-model-file",
        ),
        pytest.param(
            "[models.a]\nbackend='sdserver'",
            "models.a.upstreams: needs at least one server URL",
            id="sdserver-no-upstreams",
        ),
        pytest.param(
            "[models.a]\nbackend='sdserver'\nupstreams=['http://a']\nchat_template='chatml'",
            "models.a.chat_template: has no meaning for a model on sd-server",
            id="sdserver-template",
        ),
        pytest.param(
            "[models.a]\nbackend='sdserver'\nmodel='sd.gguf'\nupstreams=['http://a']",
            "models.a.upstreams: a model the proxy runs (cmd or model) has none",
            id="sdserver-run-and-upstreams",
        ),
        pytest.param(
            "[models.a]\nbackend='sdserver'\nupstreams=['http://a']\nendpoints=['chat']",
            'models.a.endpoints: belongs to a model of backend = "openai"',
            id="sdserver-endpoints",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nupstream_model='b'",
            'models.a.upstream_model: belongs to a model of backend = "openai" or',
            id="upstream-model-on-servercpp",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nendpoints=['chat','images']",
            "models.a.endpoints: must be a list of some of chat, completions, embeddings, rerank",
            id="endpoints-unknown",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nendpoints=[]",
            "models.a.endpoints: must be a list of some of",
            id="endpoints-none",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nendpoints=['chat','chat']",
            "models.a.endpoints: names an endpoint twice",
            id="endpoints-twice",
        ),
        pytest.param(
            "[models.a]\nbackend='anthropic'\nupstreams=['http://a']\nendpoints=['chat']",
            'models.a.endpoints: belongs to a model of backend = "openai"',
            id="endpoints-on-anthropic",
        ),
        pytest.param(
            "[models.a]\nupstreams=['http://a']\nendpoints=['embeddings']",
            'models.a.endpoints: belongs to a model of backend = "openai"',
            id="endpoints-on-servercpp",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nupstream_key_env='A KEY'",
            "models.a.upstream_key_env: must name an environment variable",
            id="key-env-not-a-name",
        ),
        pytest.param(
            "[models.a]\nbackend='openai'\nupstreams=['http://a/v1']\nupstream_key_env='K'\n"
            "upstream_key='k'",
            "models.a.upstream_key_env: and upstream_key are one key",
            id="two-keys",
        ),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as error:
        read_catalog(path)
    assert str(error.value).startswith(path + ": ")
    assert message in str(error.value)


def test_an_openai_compatible_upstream(tmp_path):
    catalog = read_catalog(
        write(
            tmp_path,
            """
[models.big]
backend = "openai"
upstreams = ["http://gpu-box:8000/v1", {url = "https://cloud.example/v1", slots = 8}]
upstream_model = "Qwen/Qwen3-32B"
upstream_key_env = "GPU_BOX_KEY"

[models.small]
backend = "openai"
upstreams = ["http://laptop:1234/v1"]

[models.vectors]
backend = "openai"
upstreams = ["http://gpu-box:8001/v1"]
endpoints = ["embeddings", "rerank"]
""",
        )
    )
    big, small, embedder = catalog.models
    assert big.endpoints == () and embedder.endpoints == ("embeddings", "rerank")
    assert big.backend == "openai" and big.upstream_model == "Qwen/Qwen3-32B"
    assert big.upstreams == (
        UpstreamSpec("http://gpu-box:8000/v1"),
        UpstreamSpec("https://cloud.example/v1", 8),
    )
    assert big.upstream_key_env == "GPU_BOX_KEY" and big.upstream_key == ""
    assert small.upstream_model == "small"  # the id, unless it says another


def test_fallbacks_and_overflow_are_named_by_id_or_alias(tmp_path):
    catalog = read_catalog(
        write(
            tmp_path,
            """
[models.local]
upstreams = ["http://a"]
fallbacks = ["box", "cloud"]
warm = ["box"]
overflow = "box"
overflow_after = 2
[models.big-box]
aliases = ["box"]
upstreams = ["http://b"]
[models.cloud]
backend = "openai"
upstreams = ["https://c/v1"]
price = { input = 0.15, output = 0.6 }
[models.cached]
backend = "anthropic"
upstreams = ["https://d"]
price = { input = 3, cached_input = 0.3, output = 15, web_search = 10 }
""",
        )
    )
    local = catalog.models[0]
    assert local.fallbacks == ("big-box", "cloud") and local.warm == ("big-box",)
    assert (local.overflow, local.overflow_after) == ("big-box", 2)
    assert catalog.prices == {"cloud": Price(0.15, 0.6), "cached": Price(3.0, 15.0, 0.3, 10.0)}
    assert catalog.prices["cached"].micro_usd(10, 1, 5, 2) == 5 * 3 + 5 * 0.3 + 15 + 2 * 10_000
    assert catalog.local_models == {"local", "big-box"}  # llama.cpp's servers, wherever they run


def test_a_price_names_its_audio_its_stored_completions_and_its_tiers(tmp_path):
    catalog = read_catalog(
        write(
            tmp_path,
            """
[models.gpt]
backend = "openai"
upstreams = ["https://c/v1"]
filters = { set = { service_tier = "flex" } }
[models.gpt.price]
input = 2.5
output = 10
audio_input = 40
store = 0
[models.gpt.price.tiers.priority]
input = 5
cached_input = 0.5
output = 20
[models.gpt.price.tiers.flex]
input = 1.25
output = 5
""",
        )
    )
    priority, flex = Price(5.0, 20.0, 0.5), Price(1.25, 5.0)
    assert catalog.prices["gpt"] == Price(
        2.5, 10.0, audio_input=40.0, store=0.0, tiers=(("priority", priority), ("flex", flex))
    )


def test_a_price_names_pictures_by_their_size(tmp_path):
    catalog = read_catalog(
        write(
            tmp_path,
            """
[models.sd]
backend = "sdserver"
upstreams = ["http://s"]
price = { image = { "512x512" = 0.01, "1024x1024" = 0.04 } }
""",
        )
    )
    assert catalog.prices["sd"] == Price(image_sizes=(("512x512", 0.01), ("1024x1024", 0.04)))


def test_models_the_proxy_runs(tmp_path):
    catalog = read_catalog(
        write(
            tmp_path,
            """
max_running = 1
[models.a]
model = "/m/a.gguf"
args = ["-c", "8192"]
ttl = 60
[models.b]
cmd = "/opt/server -m ${MODEL} --port ${PORT} --alias 'b model'"
model = "/m/b.gguf"
preload = true
""",
        )
    )
    a, b = catalog.models
    assert catalog.max_running == 1 and a.upstreams == () and b.upstreams == ()
    assert (a.managed.command, a.managed.model, a.managed.args, a.managed.ttl) == (
        None,
        "/m/a.gguf",
        ("-c", "8192"),
        60.0,
    )
    assert b.managed.command == (
        "/opt/server",
        "-m",
        "${MODEL}",
        "--port",
        "${PORT}",
        "--alias",
        "b model",
    )
    assert b.managed.preload and not a.managed.preload


def test_a_syntax_error_names_the_line(tmp_path):
    with pytest.raises(CatalogError, match="line 3"):
        read_catalog(write(tmp_path, "[models.a]\nupstreams=['http://a']\nslots = = 1\n"))


def test_a_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="cannot read the models file"):
        read_catalog(str(tmp_path / "nope.toml"))


def test_an_alias_of_the_default_is_the_default(tmp_path):
    catalog = parse_catalog(
        {"default": "b", "models": {"a": {"aliases": ["b"], "upstreams": ["http://a"]}}}, "x"
    )
    assert catalog.default == "a"


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        pytest.param(
            GenerationRequest(),
            GenerationRequest(
                max_tokens=64,
                stop=("END",),
                sampling=Sampling(temperature=0.1, top_k=5),
                cache_prompt=True,
            ),
            id="all-filled",
        ),
        pytest.param(
            GenerationRequest(
                max_tokens=8, stop=("X",), sampling=Sampling(temperature=0.9), cache_prompt=False
            ),
            GenerationRequest(
                max_tokens=8,
                stop=("X",),
                sampling=Sampling(temperature=0.9, top_k=5),
                cache_prompt=False,
            ),
            id="client-wins",
        ),
    ],
)
def test_defaults_fill_only_what_the_client_left_out(asked, expected):
    defaults = GenerationRequest(
        max_tokens=64, stop=("END",), sampling=Sampling(temperature=0.1, top_k=5), cache_prompt=True
    )
    assert with_defaults(asked, defaults) == expected


@pytest.mark.parametrize("value", ["auto", "think-tags", "none"])
def test_a_models_reasoning(value):
    catalog = parse_catalog(
        {"models": {"r1": {"upstreams": ["http://127.0.0.1:8080"], "reasoning": value}}},
        "models.toml",
    )
    assert catalog.models[0].reasoning == value


def test_a_reasoning_that_is_no_style_is_named():
    with pytest.raises(CatalogError, match="models.r1.reasoning: must be one of auto"):
        parse_catalog(
            {"models": {"r1": {"upstreams": ["http://127.0.0.1:8080"], "reasoning": "deepseek"}}},
            "models.toml",
        )


def test_a_vision_model_and_a_reranker_start_their_servers_so():
    catalog = parse_catalog(
        {
            "models": {
                "eyes": {"model": "/m/vl.gguf", "mmproj": "/m/mmproj.gguf", "args": ["-c", "4096"]},
                "ranker": {"model": "/m/rerank.gguf", "reranking": True},
                "plain": {"model": "/m/plain.gguf"},
            }
        },
        "models.toml",
    )
    eyes, ranker, plain = catalog.models
    assert eyes.managed.args == ("-c", "4096", "--mmproj", "/m/mmproj.gguf")
    assert ranker.managed.args == ("--reranking",)
    assert (eyes.managed.capabilities, ranker.managed.capabilities, plain.managed.capabilities) == (
        ("completion", "tools", "vision"),
        ("rerank",),
        ("completion", "tools"),
    )


@pytest.mark.parametrize(
    "entry, key",
    [
        ({"model": "/m/a.gguf", "mmproj": 3}, "models.a.mmproj"),
        ({"model": "/m/a.gguf", "reranking": "yes"}, "models.a.reranking"),
        ({"upstreams": ["http://127.0.0.1:8080"], "mmproj": "/m/p.gguf"}, "models.a.mmproj"),
        ({"upstreams": ["http://127.0.0.1:8080"], "reranking": True}, "models.a.reranking"),
    ],
)
def test_a_projector_or_reranking_on_a_model_the_proxy_does_not_run_is_named(entry, key):
    with pytest.raises(CatalogError, match=key.replace(".", r"\.")):
        parse_catalog({"models": {"a": entry}}, "models.toml")


@pytest.mark.parametrize(
    ("model_id", "problem"),
    [
        pytest.param("qwen3:8b", "", id="ollama-tag"),
        pytest.param("Llama-3.1-8B_Instruct Q4", "", id="dots-dashes-spaces"),
        pytest.param("x" * 128, "", id="longest"),
        pytest.param("x" * 129, "is longer than 128 characters", id="too-long"),
        pytest.param("", "is empty", id="empty"),
        pytest.param("../../../x", "has a path separator", id="climbing"),
        pytest.param("a/b", "has a path separator", id="slash"),
        pytest.param("a\\b", "has a path separator", id="backslash"),
        pytest.param("..", "has '..' in it", id="parent"),
        pytest.param("a..b", "has '..' in it", id="double-dot"),
        pytest.param(".hidden", "starts with a dot", id="leading-dot"),
        pytest.param("a\nb", "has a control character", id="newline"),
        pytest.param("a\x00b", "has a control character", id="nul"),
        pytest.param("a\x85b", "has a control character", id="c1-control"),
    ],
)
def test_an_id_must_be_able_to_name_its_files(model_id, problem):
    assert id_problem(model_id).startswith(problem)
    assert bool(id_problem(model_id)) == bool(problem)


def test_an_id_that_cannot_name_its_files_stops_the_proxy_naming_it(tmp_path):
    path = write(tmp_path, '[models."../../../x"]\nmodel = "x.gguf"\n')
    with pytest.raises(CatalogError) as error:
        read_catalog(path)
    assert str(error.value) == (
        f"{path}: models: the id '../../../x' cannot name its "
        f"server's log file and slot folder: it has a path separator "
        f"(/ or \\) in it"
    )


def test_the_flags_model_id_is_checked_too():
    settings = Settings.of(model="/m/qwen.gguf", model_name="../qwen")
    with pytest.raises(CatalogError, match="'../qwen' .*--model-name"):
        from_settings(settings)
    assert from_settings(Settings.of(model="/m/qwen.gguf")).default == "qwen.gguf"


def test_pulled_models_join_unless_a_configured_one_has_their_name():
    configured = parse_catalog(
        {"models": {"mine": {"upstreams": ["http://a:1"], "aliases": ["hf.co/org/taken:latest"]}}},
        "m.toml",
    )
    catalog = with_pulled(
        configured, [HubReference("org/repo", "Q4_K_M"), HubReference("org/taken")], ("-c", "2048")
    )
    (pulled,) = catalog.models[1:]
    assert pulled.id == "hf.co/org/repo:Q4_K_M" and pulled.pulled
    assert pulled.file_stem == "org--repo-Q4_K_M" and id_problem(pulled.file_stem) == ""
    assert pulled.managed.model == "hf:org/repo:Q4_K_M" and pulled.managed.args == ("-c", "2048")
    for name in ("hf.co/org/repo:Q4_K_M", "hf:org/repo:Q4_K_M", "huggingface.co/org/repo:Q4_K_M"):
        assert catalog.find(name) is pulled and catalog.named(name) in (pulled, None)
    assert catalog.find("hf.co/org/repo") is None  # another tag: another model
    assert with_pulled(configured, []) is configured


def test_a_models_files_paths_are_taken_from_its_folder(tmp_path):
    (tmp_path / "mm.gguf").write_bytes(b"GGUF")
    (tmp_path / "models.toml").write_text(
        """
[models.a]
model = "a.gguf"
mmproj = "vision/mm.gguf"
chat_template = "tpl.jinja"
args = ["--lora", "mm.gguf", "-c", "512"]

[models.b]
cmd = "./server -m ${MODEL} --port ${PORT} --grammar-file ~/g.gbnf"
model = "../b.gguf"
chat_template = "chatml"

[models.c]
model = "hf:org/repo:Q8_0"
"""
    )
    a, b, c = read_catalog(str(tmp_path / "models.toml")).models
    assert a.managed.model == str(tmp_path / "a.gguf")
    assert a.chat_template == str(tmp_path / "tpl.jinja")
    assert a.managed.args == (
        "--lora",
        str(tmp_path / "mm.gguf"),
        "-c",
        "512",
        "--mmproj",
        str(tmp_path / "vision" / "mm.gguf"),
    )
    assert b.managed.model == str(tmp_path.parent / "b.gguf") and b.chat_template == "chatml"
    assert b.managed.command[0] == str(tmp_path / "server")
    assert b.managed.command[-1].startswith("/") and b.managed.command[-1].endswith("/g.gbnf")
    assert c.managed.model == "hf:org/repo:Q8_0"


@pytest.mark.parametrize(
    "model, says",
    [
        ('model = "hf:org"', "is not a hub reference of the form"),
        ('backend = "chatglm"\nmodel = "hf:org/repo"', "not on a hub"),
        ('model = "m.gguf"\nargs = ["--vae", "hf:org/repo"]',
         r"models.x.args\[1\]: 'hf:org/repo' is not one file on a hub of the form"),
        ('model = "m.gguf"\nargs = ["--lora", "hf:org/repo/../x"]', r"models.x.args\[1\]"),
        ('cmd = "server --port ${PORT} --vae hf:org/repo"', r"models.x.cmd\[4\]: 'hf:org/repo'"),
    ],
)  # fmt: skip
def test_a_hub_reference_a_models_file_cannot_use_is_named(model, says):
    with pytest.raises(CatalogError, match=says):
        parse_catalog(tomllib.loads(f"[models.x]\n{model}\n"), "m.toml")


MODEL = '[models.m]\nupstreams = ["http://127.0.0.1:8080"]\n'


def test_a_models_tools_are_servers_declared_in_the_file():
    text = MODEL + 'tools = ["fs", "fs"]\nmax_tool_turns = 3\n[mcp_servers.fs]\ncommand = ["x"]\n'
    (model,) = parse_catalog(tomllib.loads(text), "models.toml").models
    assert (model.tools, model.max_tool_turns) == (("fs",), 3)
    assert parse_catalog(tomllib.loads(MODEL), "models.toml").models[0].max_tool_turns == 8


@pytest.mark.parametrize(
    "extra, key, says",
    [
        ('tools = ["fs"]\n', "models.m.tools", "'fs' is no server of tools declared here"),
        ('tools = ["web"]\n', "models.m.tools", "declare \\[mcp_servers"),
        ('tools = "fs"\n', "models.m.tools", "must be a list"),
        ("max_tool_turns = 0\n", "models.m.max_tool_turns", "from 1 to 64"),
        ("max_tool_turns = 65\n", "models.m.max_tool_turns", "from 1 to 64"),
        ("max_tool_turns = true\n", "models.m.max_tool_turns", "from 1 to 64"),
        ("[mcp_servers.web]\ncommand = ['x']\n", "mcp_servers.web", "the web search's name"),
    ],
)
def test_a_models_tools_mistakes_are_named(extra, key, says):
    with pytest.raises(CatalogError, match=says) as error:
        parse_catalog(tomllib.loads(MODEL + extra), "models.toml")
    assert key in str(error.value)
