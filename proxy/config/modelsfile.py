"""Reading a catalog: from a models file (``--config models.toml``), or from the historic
flags, which describe a fleet of one: one model on the ``--llama-api`` replicas, answering to
any model name. Reading a file checks everything once, at start-up; a mistake stops the proxy
with a message naming the file, the key and what is wrong. Pure: no network, no processes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import unicodedata
from typing import Any, Optional
from urllib.parse import urlsplit

from proxy.config.catalog import (
    ENDPOINTS,
    WEB,
    Catalog,
    CatalogError,
    Filters,
    ManagedSpec,
    McpServerSpec,
    ModelSpec,
    Price,
    Timeouts,
    UpstreamSpec,
    WebSearchSpec,
)
from proxy.config.files import (
    parse_size,
    read_toml,
    resolved,
    resolved_arguments,
    resolved_template,
)
from proxy.config.hubref import HubReference, is_hub_reference
from proxy.core.addresses import http_parts
from proxy.core.errors import InvalidRequestError
from proxy.core.fields import Fields, effort, sampling, stop_words, template_kwargs
from proxy.core.types import TOOL_TURNS, GenerationRequest, Sampling

BACKENDS = ("servercpp", "chatglm", "openai", "anthropic")
APIS = ("openai", "anthropic")  # backends of a server that speaks a public API
REASONING = ("auto", "think-tags", "none")  # how a model's thoughts are told from its answer
SLOT_SAVES = ("on-stop", "every-turn", "off")  # when a server the proxy runs saves its KV caches
# keys of a model the proxy runs or a server.cpp, which an OpenAI-compatible upstream has not
LOCAL_ONLY = ("chat_template", "reasoning", "cmd", "model", "args", "ttl", "preload", "slot_save")
# keys of a model on a server of a public API alone
API_ONLY = ("upstream_model", "headers", "headers_env", "timeouts", "filters")
# Headers the proxy writes itself, by the lower-case name: those that frame every request,
# and each API's key and version (a key has upstream_key_env, which no page shows).
FRAMING = ("host", "content-length", "content-type", "transfer-encoding", "connection")
OWN_HEADERS = {"openai": ("authorization",), "anthropic": ("x-api-key", "anthropic-version")}
# the characters of a header's name (RFC 9110's token)
TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
TIMEOUTS = ("connect", "read", "first_byte")
# Body fields no filter touches: what makes the request the one the client asked for.
UNFILTERED = ("model", "messages", "stream", "stream_options")
REQUIRED = {"anthropic": ("max_tokens",)}  # fields an API requires: set, never stripped
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
TOP_KEYS = {
    "default",
    "catch_all",
    "models",
    "max_running",
    "max_memory",
    "mcp_servers",
    "web_search",
}
MCP_KEYS = {
    "command",
    "env",
    "cwd",
    "url",
    "headers_env",
    "call_timeout",
    "start_timeout",
    "max_output_bytes",
    "idle_stop",
}
# an MCP server's name, as a client's server_label is written (OpenAI's rule)
MCP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header's name (a token)
LONGEST_ID = 128  # characters: an id names its server's log file and slot folder
MOST_TOOL_TURNS = 64
MCP_OUTPUT = 1024 * 1024  # bytes of an MCP tool's result kept, unless the file says
LEAST_OUTPUT = 1024  # the least a server's max_output_bytes may be
WEB_SEARCH_KEYS = {"searxng", "max_results", "timeout", "fetch", "max_fetch_bytes"}
WEB_FETCH = ("public", "any", "off")  # where web_fetch may go: as --image-urls says it
MOST_RESULTS = 20  # the most hits a search may give the model


def from_settings(settings) -> Catalog:
    """The models file ``--config`` names, else the fleet of one the flags describe."""
    if settings.models.config:
        catalog = read_catalog(settings.models.config, settings.prompts.chat_template)
        return dataclasses.replace(
            catalog,
            max_running=catalog.max_running or settings.servers.max_running,
            max_memory=catalog.max_memory or parse_size(settings.servers.max_memory or "0"),
        )
    slots = settings.upstream.slots
    models, servers, prompts = settings.models, settings.servers, settings.prompts
    if models.backend == "servercpp" and models.model:
        # one command, one model: its server starts loading with the proxy
        managed = ManagedSpec(
            model=models.model,
            args=tuple(shlex.split(servers.server_args)),
            preload=True,
            slot_save=servers.slot_save,
        )
        model = ModelSpec(
            id=models.model_name or os.path.basename(models.model),
            chat_template=prompts.chat_template,
            managed=managed,
            affinity=models.affinity == "on",
            reasoning=prompts.reasoning,
            drop_hosted_tools=models.hosted_tools == "drop",
        )
        problem = id_problem(model.id)
        if problem:
            raise CatalogError(
                f"the model id {model.id!r} (--model-name, else the model "
                f"file's name) cannot name the server's log file and slot "
                f"folder: it {problem}"
            )
        return Catalog(
            (model,),
            model.id,
            catch_all=True,
            max_running=servers.max_running,
            max_memory=parse_size(servers.max_memory or "0"),
        )
    model = ModelSpec(
        id=settings.models.model_name,
        backend=settings.models.backend,
        upstreams=tuple(UpstreamSpec(url.rstrip("/"), slots) for url in settings.upstream.llama_api)
        if settings.models.backend == "servercpp"
        else (),
        embedding_upstream=(
            UpstreamSpec(settings.upstream.embedding_api.rstrip("/"), slots)
            if settings.upstream.embedding_api
            else None
        ),
        chat_template=settings.prompts.chat_template,
        path=settings.models.model,
        affinity=settings.models.affinity == "on",
        upstream_key=settings.upstream.llama_api_key,
        reasoning=settings.prompts.reasoning,
        drop_hosted_tools=settings.models.hosted_tools == "drop",
    )
    return Catalog((model,), model.id, catch_all=True)


# -- reading a models file -------------------------------------------------------------------


def read_catalog(path: str, chat_template: str = "auto") -> Catalog:
    """Read and check a models file; any mistake is a :class:`CatalogError` naming it.
    ``chat_template``: the template of a model that names none."""
    return parse_catalog(read_toml(path, "models file", CatalogError), path, chat_template)


def parse_catalog(data: dict, source: str, chat_template: str = "auto") -> Catalog:
    """Check a parsed models file (``source`` names it in messages, and its folder is where
    the relative paths in it start)."""
    folder = os.path.dirname(os.path.abspath(source))

    def fail(key: str, problem: str) -> CatalogError:
        return CatalogError(f"{source}: {key}: {problem}")

    _no_unknown(data, TOP_KEYS, "", fail)
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables:
        raise fail("models", "needs at least one [models.<id>] table")
    for model_id in tables:
        problem = id_problem(model_id)
        if problem:
            raise fail(
                "models",
                f"the id {model_id!r} cannot name its server's log file and "
                f"slot folder: it {problem}",
            )
    models = tuple(
        _model(model_id, spec, f"models.{model_id}", fail, chat_template, folder)
        for model_id, spec in tables.items()
    )
    seen: dict = {}
    for model in models:
        for name in model.names:
            if name in seen:
                raise fail(
                    f"models.{model.id}",
                    f"the name {name!r} is already taken by models.{seen[name]}",
                )
            seen[name] = model.id
    for model in models:
        for field, fallback in (
            *(("fallbacks", name) for name in model.fallbacks),
            *(("context_fallbacks", name) for name in model.context_fallbacks),
            *(("warm", name) for name in model.warm),
        ):
            if fallback not in seen or seen[fallback] == model.id:
                raise fail(
                    f"models.{model.id}.{field}",
                    f"{fallback!r} is not another model's name; the ids are "
                    f"{', '.join(m.id for m in models)}",
                )
        if model.overflow and seen.get(model.overflow, model.id) == model.id:
            raise fail(
                f"models.{model.id}.overflow",
                f"{model.overflow!r} is not another model's name; the ids are "
                f"{', '.join(m.id for m in models)}",
            )
    models = tuple(
        dataclasses.replace(
            model,
            fallbacks=tuple(dict.fromkeys(seen[name] for name in model.fallbacks)),
            context_fallbacks=tuple(dict.fromkeys(seen[n] for n in model.context_fallbacks)),
            warm=tuple(dict.fromkeys(seen[name] for name in model.warm)),
            overflow=seen[model.overflow] if model.overflow else "",
        )
        for model in models
    )
    default = data.get("default", models[0].id)
    if not isinstance(default, str) or default not in seen:
        raise fail("default", f"must name a model; the ids are {', '.join(m.id for m in models)}")
    catch_all = data.get("catch_all", False)
    if not isinstance(catch_all, bool):
        raise fail("catch_all", "must be true or false")
    max_running = data.get("max_running", 0)
    if isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 0:
        raise fail("max_running", "must be a whole number of servers (0 = no limit)")
    mcp_servers = _mcp_servers(data.get("mcp_servers", {}), fail, folder)
    _tools_declared(models, mcp_servers, "web_search" in data, fail)
    return Catalog(
        models,
        seen[default],
        catch_all,
        max_running,
        _memory(data.get("max_memory", 0), fail),
        mcp_servers,
        web_search=_web_search(data.get("web_search"), fail),
    )


def _tools_declared(models: tuple, mcp_servers: tuple, web: bool, fail) -> None:
    """Each server of tools a model names is declared: an MCP server, or the web search."""
    declared = [spec.name for spec in mcp_servers] + ([WEB] if web else [])
    for model in models:
        for name in model.tools:
            if name not in declared:
                known = ", ".join(declared) or "none: declare [mcp_servers.<name>] or [web_search]"
                raise fail(
                    f"models.{model.id}.tools",
                    f"{name!r} is no server of tools declared here; they are {known}",
                )


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


def _memory(value: Any, fail) -> int:
    """A size as ``"20GiB"`` or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    try:
        if isinstance(value, str):
            return parse_size(value)
    except ValueError as exc:
        raise fail("max_memory", str(exc)) from None
    raise fail("max_memory", f'must be a size such as "20GiB", got {value!r}')


def _model(model_id: str, spec: Any, key: str, fail, chat_template: str, folder: str) -> ModelSpec:
    if not isinstance(spec, dict):
        raise fail(key, "must be a table")
    _no_unknown(spec, MODEL_KEYS, key + ".", fail)
    backend = spec.get("backend", "servercpp")
    if backend not in BACKENDS:
        raise fail(f"{key}.backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    aliases = spec.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise fail(f"{key}.aliases", "must be a list of names")
    slots = _count(spec.get("slots", 0), f"{key}.slots", fail)
    upstreams = spec.get("upstreams", [])
    managed = _managed(spec, key, fail, folder) if backend == "servercpp" else None
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
    elif backend in ("servercpp", *APIS):
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
    headers, headers_env = _headers(spec, backend, key, fail)
    filters = _filters(
        spec.get("filters"), backend, spec["defaults"] if defaults else {}, key, fail
    )
    reasoning = spec.get("reasoning", "auto")
    if reasoning not in REASONING:
        raise fail(f"{key}.reasoning", f"must be one of {', '.join(REASONING)}, got {reasoning!r}")
    return ModelSpec(
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
        timeouts=_timeouts(spec.get("timeouts"), f"{key}.timeouts", fail),
        filters=filters,
    )


def _managed(spec: dict, key: str, fail, folder: str) -> Optional[ManagedSpec]:
    """The server to run for a servercpp model that names a ``cmd`` or a ``model`` file (or
    a model on a hub); the paths in them taken from the models file's ``folder``."""
    if "cmd" not in spec and "model" not in spec:
        for name in ("args", "ttl", "preload", "slot_save", "mmproj", "reranking"):
            if name in spec:
                raise fail(f"{key}.{name}", "belongs to a model the proxy runs (cmd or model)")
        return None
    command = None
    if "cmd" in spec:
        if not isinstance(spec["cmd"], str) or "${PORT}" not in spec["cmd"]:
            raise fail(f"{key}.cmd", "must be a command line with ${PORT} in it")
        command = resolved_arguments(shlex.split(spec["cmd"]), folder)
    model = spec.get("model", "")
    if not isinstance(model, str) or ("cmd" not in spec and not model):
        raise fail(f"{key}.model", "must be the path of a model file, or hf:<org>/<repo>")
    try:
        HubReference.parse(model)
    except ValueError as exc:
        raise fail(f"{key}.model", str(exc)) from None
    args = spec.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise fail(f"{key}.args", "must be a list of strings")
    mmproj = spec.get("mmproj", "")
    if not isinstance(mmproj, str):
        raise fail(f"{key}.mmproj", "must be the path of a vision projector file")
    if not isinstance(spec.get("reranking", False), bool):
        raise fail(f"{key}.reranking", "must be true or false")
    args = [
        *resolved_arguments(args, folder),
        *(["--mmproj", resolved(mmproj, folder)] if mmproj else []),
        *(["--reranking"] if spec.get("reranking") else []),
    ]
    ttl = spec.get("ttl", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0:
        raise fail(f"{key}.ttl", "must be a number of seconds (0 = never stop)")
    if not isinstance(spec.get("preload", False), bool):
        raise fail(f"{key}.preload", "must be true or false")
    slot_save = spec.get("slot_save", "on-stop")
    if slot_save not in SLOT_SAVES:
        raise fail(f"{key}.slot_save", f"must be one of {', '.join(SLOT_SAVES)}, got {slot_save!r}")
    return ManagedSpec(
        command,
        resolved(model, folder),
        tuple(args),
        float(ttl),
        spec.get("preload", False),
        slot_save,
    )


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


def _mcp_servers(tables: Any, fail, folder: str) -> tuple:
    """``[mcp_servers.NAME]`` tables, each a server the gateway runs tools on."""
    if not isinstance(tables, dict):
        raise fail("mcp_servers", "must be tables: [mcp_servers.<name>]")
    return tuple(
        _mcp_server(name, spec, f"mcp_servers.{name}", fail, folder)
        for name, spec in tables.items()
    )


def _mcp_server(name: str, spec: Any, key: str, fail, folder: str) -> McpServerSpec:
    """One MCP server: ``command`` (stdio, with ``env`` and ``cwd``) or ``url`` (streamable
    HTTP, with ``headers_env``), and the bounds of its calls."""
    if not MCP_NAME.fullmatch(name):
        raise fail(key, "a name is 1 to 64 letters, digits, '-' or '_'")
    if name == WEB:
        raise fail(key, f"{WEB!r} is the web search's name ([web_search]); choose another")
    if not isinstance(spec, dict):
        raise fail(key, "must be a table")
    _no_unknown(spec, MCP_KEYS, key + ".", fail)
    if ("command" in spec) == ("url" in spec):
        raise fail(key, 'needs command = [...] (a server on stdio) or url = "...", one of them')
    for field_name, belongs in (("env", "command"), ("cwd", "command"), ("headers_env", "url")):
        if field_name in spec and belongs not in spec:
            raise fail(f"{key}.{field_name}", f"belongs to a server with a {belongs}")
    command = spec.get("command", [])
    if "command" in spec and (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        raise fail(f"{key}.command", "must be a list: the program, then its arguments")
    env = _strings(
        spec.get("env", {}), f"{key}.env", fail, "{ <variable> = <value> }", str.isidentifier
    )
    cwd = spec.get("cwd", "")
    if not isinstance(cwd, str):
        raise fail(f"{key}.cwd", "must be the path of a folder")
    headers = _strings(
        spec.get("headers_env", {}),
        f"{key}.headers_env",
        fail,
        '{ <header> = "<the environment variable that holds its value>" }',
        lambda name: bool(HEADER_NAME.fullmatch(name)),
        values=str.isidentifier,
    )
    url = spec.get("url", "")
    if "url" in spec:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise fail(f"{key}.url", "must be an http(s) URL")
        if "@" in parts.netloc:
            raise fail(
                f"{key}.url",
                "holds a user name or password: a credential goes in headers_env, read from "
                "the environment, never in the models file",
            )
    return McpServerSpec(
        name=name,
        command=resolved_arguments(command, folder, exists=lambda path: False),
        env=env,
        cwd=resolved(cwd, folder),
        url=url,
        headers_env=headers,
        call_timeout=_seconds(spec, "call_timeout", 60.0, key, fail, zero=False),
        start_timeout=_seconds(spec, "start_timeout", 30.0, key, fail, zero=False),
        max_output_bytes=_output_bytes(
            spec.get("max_output_bytes", MCP_OUTPUT), f"{key}.max_output_bytes", fail
        ),
        idle_stop=_seconds(spec, "idle_stop", 600.0, key, fail, zero=True),
    )


def _web_search(table: Any, fail) -> Optional[WebSearchSpec]:
    """``[web_search]``: the SearXNG instance searches go through, and the bounds of the
    ``web_search`` and ``web_fetch`` calls; None when the file has no such table."""
    if table is None:
        return None
    key = "web_search"
    if not isinstance(table, dict):
        raise fail(key, 'must be a table: [web_search] with searxng = "http://…"')
    _no_unknown(table, WEB_SEARCH_KEYS, key + ".", fail)
    if "searxng" not in table:
        raise fail(key, 'needs searxng = "http://…": the base URL of a SearXNG instance')
    searxng = table["searxng"]
    parts = http_parts(searxng)
    if parts is None:
        raise fail(f"{key}.searxng", "must be an http(s) URL: the base URL of a SearXNG instance")
    if "@" in parts.netloc:
        raise fail(f"{key}.searxng", "holds a user name or password: a search needs none")
    if parts.query or parts.fragment:
        raise fail(
            f"{key}.searxng",
            "must be the base URL of a SearXNG instance, without a query: the gateway asks "
            "<searxng>/search?q=…&format=json",
        )
    most = table.get("max_results", 5)
    if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= MOST_RESULTS:
        raise fail(f"{key}.max_results", f"must be a whole number from 1 to {MOST_RESULTS}")
    fetch = table.get("fetch", "public")
    if fetch not in WEB_FETCH:
        raise fail(f"{key}.fetch", f"must be one of {', '.join(WEB_FETCH)}, got {fetch!r}")
    return WebSearchSpec(
        searxng=searxng.rstrip("/"),
        max_results=most,
        timeout=_seconds(table, "timeout", 10.0, key, fail, zero=False),
        fetch=fetch,
        max_fetch_bytes=_output_bytes(
            table.get("max_fetch_bytes", MCP_OUTPUT), f"{key}.max_fetch_bytes", fail
        ),
    )


def _strings(table: Any, key: str, fail, shape: str, named, values=lambda value: True) -> tuple:
    """A table of strings by name, as ``(name, value)`` pairs; ``named`` and ``values`` say
    which names and values it may hold."""
    if not isinstance(table, dict):
        raise fail(key, f"must be a table: {shape}")
    for name, value in table.items():
        if not named(name):
            raise fail(f"{key}.{name}", f"is not a name this table may hold: {shape}")
        if not isinstance(value, str) or not values(value):
            raise fail(f"{key}.{name}", f"must be a string, as in {shape}")
    return tuple(table.items())


def _seconds(spec: dict, name: str, default: float, key: str, fail, zero: bool) -> float:
    value = spec.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < 0
        or (value == 0 and not zero)
    ):
        never = " (0 = never)" if zero else ""
        raise fail(f"{key}.{name}", f"must be a number of seconds{never}, got {value!r}")
    return float(value)


def _output_bytes(value: Any, key: str, fail) -> int:
    """A result's bound, as ``"1MiB"`` or a number of bytes, of at least :data:`LEAST_OUTPUT`."""
    try:
        size = parse_size(value) if isinstance(value, str) else value
    except ValueError as exc:
        raise fail(key, str(exc)) from None
    if isinstance(size, bool) or not isinstance(size, int) or size < LEAST_OUTPUT:
        raise fail(
            key, f'must be a size of at least {LEAST_OUTPUT} bytes, such as "1MiB", got {value!r}'
        )
    return size


def _names(value: Any, key: str, fail) -> tuple:
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        raise fail(key, "must be a list of model names")
    return tuple(value)


def _price(table: Any, key: str, fail) -> Optional[Price]:
    """``{input = 0.15, cached_input = 0.015, output = 0.60}``: US dollars per million
    tokens; cached prompt tokens at the input's price unless ``cached_input`` says."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise fail(
            key,
            "must be a table: { input = <$ per million>, cached_input = <$ per million>, "
            "output = <$ per million> }",
        )
    _no_unknown(table, {"input", "cached_input", "output"}, key + ".", fail)
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise fail(f"{key}.{name}", f"must be US dollars per million tokens, got {value!r}")
    cached = table.get("cached_input")
    return Price(
        float(table.get("input", 0)),
        float(table.get("output", 0)),
        None if cached is None else float(cached),
    )


def _headers(spec: dict, backend: str, key: str, fail) -> tuple:
    """``headers`` and ``headers_env`` as ``(name, value)`` and ``(name, variable)`` pairs:
    what goes with every request to the upstream. A header the proxy writes itself is
    refused by name; no message ever quotes a value."""
    own = (*FRAMING, *OWN_HEADERS.get(backend, ()))
    taken: set = set()
    found = []
    for table_name, problem in (
        ("headers", "must be a string without line breaks or other control characters"),
        ("headers_env", "must name an environment variable"),
    ):
        table = spec.get(table_name, {})
        if not isinstance(table, dict):
            raise fail(f"{key}.{table_name}", 'must be a table: { "Header-Name" = ... }')
        for name, value in table.items():
            where = f"{key}.{table_name}.{name}"
            if not name or not set(name) <= TOKEN:
                raise fail(where, "is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
            if name.lower() in own:
                raise fail(where, _own_header(name.lower()))
            if name.lower() in taken:
                raise fail(where, "is given twice (a header's name is the same in any case)")
            taken.add(name.lower())
            if table_name == "headers" and not header_value(value):
                raise fail(where, problem)
            if table_name == "headers_env" and not (
                isinstance(value, str) and value.isidentifier()
            ):
                raise fail(where, problem)
        found.append(tuple(table.items()))
    return tuple(found)


def _own_header(name: str) -> str:
    """Why the proxy keeps the header ``name`` (lower case) to itself."""
    if name in ("authorization", "x-api-key"):
        return (
            "carries the upstream's key, which the proxy writes itself: name the variable "
            "that holds it in upstream_key_env"
        )
    if name == "anthropic-version":
        return "is written by the proxy itself: the version of the Messages API it speaks"
    return "is written by the proxy itself: it frames every request"


def header_value(value: Any) -> bool:
    """Whether ``value`` can be a header's value: a string with no control character but
    tabs (a line break would end the header and begin another)."""
    return isinstance(value, str) and not any(
        unicodedata.category(character) == "Cc" and character != "\t" for character in value
    )


def _timeouts(table: Any, key: str, fail) -> Timeouts:
    """``{connect = 5, read = 120, first_byte = 30}``: seconds, each positive."""
    if table is None:
        return Timeouts()
    if not isinstance(table, dict):
        raise fail(key, "must be a table: { connect = <s>, read = <s>, first_byte = <s> }")
    _no_unknown(table, set(TIMEOUTS), key + ".", fail)
    for name, value in table.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value < math.inf
        ):
            raise fail(f"{key}.{name}", f"must be a positive number of seconds, got {value!r}")
    return Timeouts(**{name: float(value) for name, value in table.items()})


def _filters(table: Any, backend: str, defaults: dict, key: str, fail) -> Filters:
    """``{strip = ["top_k"], set = {temperature = 0.2}}``: fields of the upstream's API left
    out of the body sent, and put in it with the operator's values."""
    if table is None:
        return Filters()
    key += ".filters"
    if not isinstance(table, dict):
        raise fail(key, "must be a table: { strip = [<field>, ...], set = { <field> = <value> } }")
    _no_unknown(table, {"strip", "set"}, key + ".", fail)
    strip = table.get("strip", [])
    if not isinstance(strip, list) or not all(isinstance(name, str) and name for name in strip):
        raise fail(f"{key}.strip", "must be a list of field names")
    if len(set(strip)) < len(strip):
        raise fail(f"{key}.strip", "names a field twice")
    put = table.get("set", {})
    if not isinstance(put, dict):
        raise fail(f"{key}.set", "must be a table of fields and the values they are sent with")
    for name in (*strip, *put):
        where = f"{key}.set.{name}" if name in put else f"{key}.strip"
        if name in UNFILTERED:
            raise fail(where, f"{name!r} is the proxy's to write: {', '.join(UNFILTERED)} are")
        if name in defaults:
            raise fail(where, f"{name!r} has a default too (defaults.{name}): give it in one")
    for name in strip:
        if name in put:
            raise fail(f"{key}.set.{name}", f"{name!r} is stripped too: give it in one of them")
        if name in REQUIRED.get(backend, ()):
            raise fail(
                f"{key}.strip", f"{name!r} cannot be left out: the API requires it (set it instead)"
            )
    for name, value in put.items():
        if not _json(value):
            raise fail(f"{key}.set.{name}", "must be a JSON value (no dates, no inf or nan)")
    return Filters(tuple(strip), tuple(put.items()))


def _json(value: Any) -> bool:
    """Whether ``value`` (as TOML read it) is what JSON can write."""
    if isinstance(value, dict):
        return all(_json(item) for item in value.values())
    if isinstance(value, list):
        return all(_json(item) for item in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _upstream(item: Any, slots: int, key: str, fail) -> UpstreamSpec:
    if isinstance(item, dict):
        _no_unknown(item, {"url", "slots"}, key + ".", fail)
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


def _no_unknown(table: dict, known: set, prefix: str, fail) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise fail(
            prefix + unknown[0], f"is not a known key; known here: {', '.join(sorted(known))}"
        )
