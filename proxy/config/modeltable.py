"""A ``[models.<id>]`` table of the models file checked into a :class:`ModelSpec`: its backend
and upstreams (or the server the proxy runs for it), template, defaults, fallbacks, price and
tools. Every mistake is named by its key, once, at start-up.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from typing import Any, Optional
from urllib.parse import urlsplit

from proxy.config.catalog import ENDPOINTS, ModelSpec, UpstreamSpec
from proxy.config.files import no_unknown, resolved, resolved_template
from proxy.config.hubref import is_hub_reference
from proxy.config.managed import managed_spec
from proxy.config.price import OWN_TIERS, Price, terms
from proxy.config.upstreamoptions import body_filters, upstream_headers, upstream_timeouts
from proxy.core.errors import InvalidRequestError
from proxy.core.fields import Fields, effort, sampling, stop_words, template_kwargs, text_only
from proxy.core.tooluse import TOOL_TURNS
from proxy.core.types import GenerationRequest, Sampling

BACKENDS = ("servercpp", "chatglm", "openai", "anthropic", "sdserver")
APIS = ("openai", "anthropic")  # backends of a server that speaks a public API
REASONING = ("auto", "think-tags", "none")  # how a model's thoughts are told from its answer
# keys of a model the proxy runs or a server.cpp, which an OpenAI-compatible upstream has not
LOCAL_ONLY = ("chat_template", "reasoning", "cmd", "model", "args", "ttl", "preload", "slot_save")
# keys of a model on llama-server that one on sd-server, which draws, has no use for
NOT_DRAWN = ("chat_template", "reasoning", "slot_save", "mmproj", "reranking")
# keys of a model on a server of a public API alone
API_ONLY = ("upstream_model", "headers", "headers_env", "timeouts", "filters")
# a price's keys (a service tier's, every one of them but ``tiers``)
PRICE_KEYS = {"input", "cached_input", "output", "web_search", "audio_input", "store", "image",
              "audio_second", "speech_character"}  # fmt: skip
SIZE = re.compile(r"[1-9][0-9]{0,5}x[1-9][0-9]{0,5}")  # a picture's, as OpenAI's size names it
PER = {"web_search": "1,000 searches", "store": "1,000 stored completions", "image": "picture",
       "audio_second": "second of audio", "speech_character": "character"}  # fmt: skip
# Request fields a model may default; each is applied only where the client left it out.
DEFAULTABLE = (
    "max_tokens",
    "stop",
    "n_keep",
    "cache_prompt",
    "chat_template_kwargs",
    "reasoning_effort",
) + tuple(f.name for f in dataclasses.fields(Sampling))
MODEL_KEYS = {
    "aliases",
    "backend",
    "upstreams",
    "slots",
    "chat_template",
    "model",
    "defaults",
    "reasoning",
    "slot_save",
    "affinity",
    "capture",
    "upstream_key",
    "upstream_key_env",
    "upstream_model",
    "endpoints",
    "cmd",
    "args",
    "ttl",
    "preload",
    "mmproj",
    "reranking",
    "fallbacks",
    "context_fallbacks",
    "overflow",
    "overflow_after",
    "warm",
    "drop_hosted_tools",
    "tools",
    "max_tool_turns",
    "price",
    "headers",
    "headers_env",
    "timeouts",
    "filters",
}
LONGEST_ID = 128  # characters: an id names its server's log file and slot folder
MOST_TOOL_TURNS = 64


def id_problem(model_id: str) -> str:
    """Why ``model_id`` cannot name the files made from it (its server's log, its slot
    folder, whose old caches are pruned): a name that climbs out of their folder, hides in
    it or cannot be written; empty when it can. ``qwen3:8b`` can."""
    if not model_id:
        return "is empty"
    if len(model_id) > LONGEST_ID:
        return f"is longer than {LONGEST_ID} characters"
    if "/" in model_id or "\\" in model_id:
        return "has a path separator (/ or \\) in it"
    if ".." in model_id:
        return "has '..' in it"
    if model_id.startswith("."):
        return "starts with a dot"
    if any(unicodedata.category(character) == "Cc" for character in model_id):
        return "has a control character in it"
    return ""


def model_spec(
    model_id: str, spec: Any, key: str, fail, chat_template: str, folder: str
) -> ModelSpec:
    if not isinstance(spec, dict):
        raise fail(key, "must be a table")
    no_unknown(spec, MODEL_KEYS, key + ".", fail)
    backend = spec.get("backend", "servercpp")
    if backend not in BACKENDS:
        raise fail(f"{key}.backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    aliases = spec.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise fail(f"{key}.aliases", "must be a list of names")
    slots = _count(spec.get("slots", 0), f"{key}.slots", fail)
    upstreams = spec.get("upstreams", [])
    if backend == "sdserver":
        for name in NOT_DRAWN:
            if name in spec:
                raise fail(f"{key}.{name}", "has no meaning for a model on sd-server")
    runs = backend in ("servercpp", "sdserver")  # a server the proxy may run itself
    managed = managed_spec(spec, key, fail, folder) if runs else None
    if backend not in APIS:
        for name in API_ONLY:
            if name in spec:
                raise fail(
                    f"{key}.{name}", 'belongs to a model of backend = "openai" or "anthropic"'
                )
    else:
        for name in LOCAL_ONLY:
            if name in spec:
                raise fail(f"{key}.{name}", f"has no meaning for a model of backend = {backend!r}")
    if managed:
        if "upstreams" in spec:
            raise fail(
                f"{key}.upstreams",
                "a model the proxy runs (cmd or model) has none: the proxy picks its port",
            )
        upstreams = ()
    elif backend in ("servercpp", "sdserver", *APIS):
        if not isinstance(upstreams, list) or not upstreams:
            raise fail(f"{key}.upstreams", "needs at least one server URL (one per replica)")
        upstreams = tuple(
            _upstream(item, slots, f"{key}.upstreams[{i}]", fail)
            for i, item in enumerate(upstreams)
        )
        if len({u.url for u in upstreams}) < len(upstreams):
            raise fail(f"{key}.upstreams", "names the same URL twice")
    elif "upstreams" in spec or not isinstance(spec.get("model"), str) or not spec["model"]:
        raise fail(key, "a chatglm model needs model = <path to its file>, and no upstreams")
    elif is_hub_reference(spec["model"]):
        raise fail(f"{key}.model", "a chatglm model is a file on this machine, not on a hub")
    template = spec.get("chat_template", chat_template)
    if not isinstance(template, str) or not template:
        raise fail(f"{key}.chat_template", "must be a preset name, a Jinja file or auto")
    template = resolved_template(template, folder)
    affinity = spec.get("affinity", True)
    if not isinstance(affinity, bool):
        raise fail(f"{key}.affinity", "must be true or false")
    capture = spec.get("capture", False)
    if not isinstance(capture, bool):
        raise fail(f"{key}.capture", "must be true or false")
    upstream_key = spec.get("upstream_key", "")
    if not isinstance(upstream_key, str):
        raise fail(f"{key}.upstream_key", "must be a string")
    key_env = spec.get("upstream_key_env", "")
    if not isinstance(key_env, str) or (key_env and not key_env.isidentifier()):
        raise fail(f"{key}.upstream_key_env", "must name an environment variable")
    if key_env and upstream_key:
        raise fail(f"{key}.upstream_key_env", "and upstream_key are one key: give one of them")
    upstream_model = spec.get("upstream_model", model_id)
    if not isinstance(upstream_model, str) or not upstream_model:
        raise fail(f"{key}.upstream_model", "must be the name the upstream knows the model by")
    endpoints = _endpoints(spec, backend, f"{key}.endpoints", fail)
    fallbacks, context_fallbacks, warm = (
        _names(spec.get(name, []), f"{key}.{name}", fail)
        for name in ("fallbacks", "context_fallbacks", "warm")
    )
    overflow = spec.get("overflow", "")
    if not isinstance(overflow, str):
        raise fail(f"{key}.overflow", "must be a model's name")
    overflow_after = spec.get("overflow_after", 0)
    if (
        isinstance(overflow_after, bool)
        or not isinstance(overflow_after, int)
        or overflow_after < 0
    ):
        raise fail(f"{key}.overflow_after", "must be a whole number of requests waiting")
    price = _price(spec.get("price"), f"{key}.price", fail)
    drop_hosted_tools = spec.get("drop_hosted_tools", False)
    if not isinstance(drop_hosted_tools, bool):
        raise fail(f"{key}.drop_hosted_tools", "must be true or false")
    tools = spec.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(name, str) and name for name in tools):
        raise fail(f"{key}.tools", 'must be a list of servers of tools: ["fs", "web"]')
    max_tool_turns = spec.get("max_tool_turns", TOOL_TURNS)
    if (
        isinstance(max_tool_turns, bool)
        or not isinstance(max_tool_turns, int)
        or not 1 <= max_tool_turns <= MOST_TOOL_TURNS
    ):
        raise fail(f"{key}.max_tool_turns", f"must be a whole number from 1 to {MOST_TOOL_TURNS}")
    defaults = _defaults(spec.get("defaults", {}), f"{key}.defaults", fail)
    headers, headers_env = upstream_headers(spec, backend, key, fail)
    filters = body_filters(
        spec.get("filters"), backend, spec["defaults"] if defaults else {}, key, fail
    )
    reasoning = spec.get("reasoning", "auto")
    if reasoning not in REASONING:
        raise fail(f"{key}.reasoning", f"must be one of {', '.join(REASONING)}, got {reasoning!r}")
    made = ModelSpec(
        id=model_id,
        aliases=tuple(aliases),
        backend=backend,
        upstreams=upstreams if backend != "chatglm" else (),
        chat_template=template,
        path=resolved(spec.get("model", ""), folder) if backend == "chatglm" else "",
        defaults=defaults,
        affinity=affinity,
        upstream_key=upstream_key,
        upstream_key_env=key_env,
        upstream_model=upstream_model if backend in APIS else "",
        endpoints=endpoints,
        managed=managed,
        reasoning=reasoning,
        capture=capture,
        fallbacks=fallbacks,
        context_fallbacks=context_fallbacks,
        overflow=overflow,
        overflow_after=overflow_after,
        warm=warm,
        drop_hosted_tools=drop_hosted_tools,
        tools=tuple(dict.fromkeys(tools)),
        max_tool_turns=max_tool_turns,
        price=price,
        headers=headers,
        headers_env=headers_env,
        timeouts=upstream_timeouts(spec.get("timeouts"), f"{key}.timeouts", fail),
        filters=filters,
    )
    _set_filters(made, key, fail)
    return made


def _endpoints(spec: dict, backend: str, key: str, fail) -> tuple:
    """The routes an OpenAI-compatible upstream serves, when the models file says (``()``:
    it does not, and the backend learns them from the upstream's answers)."""
    if "endpoints" not in spec:
        return ()
    if backend != "openai":
        raise fail(key, 'belongs to a model of backend = "openai"')
    value = spec["endpoints"]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(name, str) and name in ENDPOINTS for name in value)
    ):
        raise fail(key, f"must be a list of some of {', '.join(ENDPOINTS)}, got {value!r}")
    if len(set(value)) < len(value):
        raise fail(key, "names an endpoint twice")
    return tuple(value)


def _names(value: Any, key: str, fail) -> tuple:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise fail(key, "must be a list of model names")
    return tuple(value)


def _price(table: Any, key: str, fail, tiered: bool = True) -> Optional[Price]:
    """``{input = 2.5, cached_input = 1.25, output = 10}``: US dollars per million tokens
    (cached prompt tokens at the input's price unless ``cached_input`` says), the prompt's
    audio among them too (``audio_input``); US dollars per 1,000 searches the
    upstream runs itself (``web_search``) and per 1,000 completions it stores (``store``);
    per picture drawn (``image``, or a table of them by size), second of audio transcribed
    (``audio_second``) and character read aloud (``speech_character``); and, in ``tiers``,
    each service tier's price, a table of the same keys but ``tiers``."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise fail(
            key,
            "must be a table: { input = <$ per million>, cached_input = <$ per million>, "
            "output = <$ per million>, web_search = <$ per 1,000 searches>, … }",
        )
    no_unknown(table, PRICE_KEYS | ({"tiers"} if tiered else set()), key + ".", fail)
    sizes = table.get("image")
    if isinstance(sizes, dict):
        table = {name: value for name, value in table.items() if name != "image"}
    for name, value in table.items():
        if name == "tiers":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            per = PER.get(name, "million tokens")
            raise fail(f"{key}.{name}", f"must be US dollars per {per}, got {value!r}")
    optional = {
        name: None if table.get(name) is None else float(table[name])
        for name in ("cached_input", "audio_input", "store")
    }
    return Price(
        float(table.get("input", 0)),
        float(table.get("output", 0)),
        web_search=float(table.get("web_search", 0)),
        **{
            name: float(table.get(name, 0))
            for name in ("image", "audio_second", "speech_character")
        },
        tiers=_tiers(table.get("tiers", {}), f"{key}.tiers", fail),
        image_sizes=_sizes(sizes, f"{key}.image", fail) if isinstance(sizes, dict) else (),
        **optional,
    )


def _sizes(table: dict, key: str, fail) -> tuple:
    """``{"512x512" = 0.02, "1024x1024" = 0.04}``: US dollars per picture of each size."""
    if not table:
        raise fail(key, 'must name one size at least: { "1024x1024" = <$ per picture> }')
    for size, value in table.items():
        if not SIZE.fullmatch(size):
            raise fail(f"{key}.{size}", "must be a size, WIDTHxHEIGHT in pixels (1024x1024)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise fail(f"{key}.{size}", f"must be US dollars per picture, got {value!r}")
    return tuple((size, float(value)) for size, value in table.items())


def _tiers(table: Any, key: str, fail) -> tuple:
    """``{priority = {input = 5, output = 20}}``: each service tier's own price."""
    if not isinstance(table, dict):
        raise fail(key, "must be a table of service tiers' prices: { priority = { … } }")
    for name in table:
        if name in OWN_TIERS:
            raise fail(f"{key}.{name}", "is the model's own price: write it in price itself")
    return tuple(
        (name, _price(value, f"{key}.{name}", fail, False)) for name, value in table.items()
    )


def _set_filters(spec: ModelSpec, key: str, fail) -> None:
    """A model's filters set no field that asks for audio output (the gateway answers in
    text), nor one its price does not cover (every request would be refused)."""
    try:
        text_only(Fields(dict(spec.filters.set)))
    except InvalidRequestError as exc:
        raise fail(f"{key}.filters.set.{exc.param}", exc.message) from None
    if spec.price is None or spec.backend != "openai" or not spec.filters.set:
        return
    problem = spec.price.refusal(terms(dict(spec.filters.set)))
    if problem is not None:
        field, why = problem
        raise fail(f"{key}.filters.set.{field}", why)


def _upstream(item: Any, slots: int, key: str, fail) -> UpstreamSpec:
    if isinstance(item, dict):
        no_unknown(item, {"url", "slots"}, key + ".", fail)
        slots = _count(item.get("slots", slots), f"{key}.slots", fail)
        item = item.get("url")
    url = urlsplit(item) if isinstance(item, str) else None
    if url is None or url.scheme not in ("http", "https") or not url.netloc:
        raise fail(key, f"must be an http(s) URL, got {item!r}")
    return UpstreamSpec(item.rstrip("/"), slots)


def _defaults(table: Any, key: str, fail) -> Optional[GenerationRequest]:
    """Check defaults as the request fields they stand for, with the same rules."""
    if not isinstance(table, dict):
        raise fail(key, "must be a table of request fields")
    if not table:
        return None
    unknown = sorted(set(table) - set(DEFAULTABLE))
    if unknown:
        raise fail(
            f"{key}.{unknown[0]}",
            f"is not a request field a model can default; those are {', '.join(DEFAULTABLE)}",
        )
    fields = Fields(table)
    try:
        return GenerationRequest(
            max_tokens=fields.integer("max_tokens", 1),
            stop=stop_words(fields),
            sampling=sampling(fields),
            n_keep=fields.integer("n_keep", -1),
            cache_prompt=fields.boolean("cache_prompt"),
            template_kwargs=template_kwargs(fields, effort=effort(fields, "reasoning_effort")),
        )
    except InvalidRequestError as exc:
        raise fail(f"{key}.{exc.param}" if exc.param else key, exc.message) from None


def _count(value: Any, key: str, fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(key, f"must be a whole number of slots (0 = as the server says), got {value!r}")
    return value
