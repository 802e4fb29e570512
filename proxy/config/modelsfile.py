"""Reading a models file (``--config models.toml``) into a catalog: its top-level keys, its
``[models.<id>]`` tables (``modeltable.py``) and its servers of tools (``toolservers.py``),
then what ties them together: each name taken once, fallbacks and tools that name what the
file declares. Everything is checked once, at start-up; a mistake stops the proxy with a
message naming the file, the key and what is wrong. Pure: no network, no processes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from proxy.config.catalog import WEB, Catalog, CatalogError
from proxy.config.files import no_unknown, parse_size, read_toml
from proxy.config.modeltable import id_problem, model_spec
from proxy.config.toolservers import mcp_server_specs, web_search_spec

TOP_KEYS = {
    "default",
    "catch_all",
    "models",
    "max_running",
    "max_memory",
    "mcp_servers",
    "web_search",
}


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

    no_unknown(data, TOP_KEYS, "", fail)
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
        model_spec(model_id, spec, f"models.{model_id}", fail, chat_template, folder)
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
    mcp_servers = mcp_server_specs(data.get("mcp_servers", {}), fail, folder)
    _tools_declared(models, mcp_servers, "web_search" in data, fail)
    return Catalog(
        models,
        seen[default],
        catch_all,
        max_running,
        _memory(data.get("max_memory", 0), fail),
        mcp_servers,
        web_search=web_search_spec(data.get("web_search"), fail),
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
