"""The command line and the ``PROXY_*`` variables of the settings: each setting's flag and
variable are named after it, its help line and choices come from its declaration."""

from __future__ import annotations

import argparse
from typing import Mapping, Optional, Sequence

ENV_PREFIX = "PROXY_"


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(
    specs: Sequence, environ: Mapping[str, str], defaults: bool = True
) -> argparse.ArgumentParser:
    """Make the ``oai-proxy`` parser for the settings' fields ``specs``; env vars become the
    defaults it shows (``defaults`` false: it fills in only what it is given)."""
    parser = argparse.ArgumentParser(
        prog="oai-proxy",
        description="OpenAI-compatible API for llama.cpp / PowerInfer server.cpp.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for spec in specs:
        meta = spec.metadata
        env = env_name(spec.name)
        default = spec.default
        if env in environ:
            default = from_env(spec.type, environ[env], env)
        kwargs = {
            "default": default,
            "metavar": meta["metavar"],
            "help": f"{meta['help']} (env {env})",
        }
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if spec.type == "tuple":
            kwargs.update(nargs="+", type=str)
        else:
            kwargs["type"] = {"int": int, "float": float}.get(spec.type, str)
        if spec.repr is False or not defaults:
            # never print a secret in --help: leave it out and fill it in after parsing
            kwargs["default"] = argparse.SUPPRESS
        parser.add_argument(flag_name(spec.name), dest=spec.name, **kwargs)
    return parser


def parsed(
    parser: argparse.ArgumentParser,
    specs: Sequence,
    argv: Optional[Sequence[str]],
    environ: Mapping[str, str],
) -> dict:
    """The flat values ``argv`` gives over ``environ``'s (secrets too, which the parser
    leaves out of its defaults)."""
    values = vars(parser.parse_args(argv))
    for spec in specs:
        if spec.type == "tuple" and spec.name in values:
            values[spec.name] = tuple(values[spec.name])
        if spec.name not in values and env_name(spec.name) in environ:
            values[spec.name] = from_env(
                spec.type, environ[env_name(spec.name)], env_name(spec.name)
            )
    return values


def given(specs: Sequence, argv: Optional[Sequence[str]], environ: Mapping[str, str]) -> set:
    """The settings the command line or the environment gives, defaults aside."""
    named = vars(build_parser(specs, {}, defaults=False).parse_args(argv))
    return set(named) | {spec.name for spec in specs if env_name(spec.name) in environ}


def from_env(kind: str, raw: str, env: str):
    """A variable's text as the setting's type (a tuple: comma-separated)."""
    if kind == "tuple":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        return {"int": int, "float": float}.get(kind, str)(raw)
    except ValueError:
        raise SystemExit(f"oai-proxy: {env}={raw!r} is not a valid {kind}") from None
