"""The agent CLIs the e2e tier runs against the proxy, as ``.ci/agents.sh`` installs them."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

AGENTS_ENV_VAR = "OAI_PROXY_AGENTS"


def agents_folder() -> pathlib.Path:
    """Where ``.ci/agents.sh`` installs the CLIs and Node libraries."""
    return pathlib.Path(
        os.environ.get(AGENTS_ENV_VAR) or pathlib.Path.home() / ".cache" / "oai-proxy" / "agents"
    )


def agent_binary(name: str) -> pathlib.Path:
    """The ``claude`` or ``codex`` command; a missing one is an error naming how to get it."""
    path = agents_folder() / "node_modules" / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"no {name} at {path}: run bash .ci/agents.sh")
    return path


def run_agent(
    command: list, env: dict, cwd: pathlib.Path, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run an agent headless: its own HOME, nothing on stdin (both wait for its end)."""
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": os.environ["PATH"], "HOME": str(home), **env},
    )


def claude(url: str, key: str, cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """``claude`` with ``args``, pointed at the proxy at ``url`` with ``key``."""
    return run_agent(
        [str(agent_binary("claude")), *args],
        {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        },
        cwd,
    )


def codex(
    url: str, key: str, cwd: pathlib.Path, *args: str, web_search: bool = False
) -> subprocess.CompletedProcess:
    """``codex exec`` with ``args`` and a provider entry for the proxy at ``url``, as the
    README gives it (``web_search``: as Codex is by default, asking for OpenAI's hosted web
    search)."""
    home = cwd / "codex-home"
    home.mkdir(exist_ok=True)
    search = "" if web_search else 'web_search = "disabled"'
    (home / "config.toml").write_text(f"""
model = "local-model"
model_provider = "oai-proxy"
{search}
check_for_update_on_startup = false
[analytics]
enabled = false
[features]
plugins = false
[model_providers.oai-proxy]
name = "oai-proxy"
base_url = "{url}/v1"
env_key = "OAI_PROXY_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
""")
    return run_agent(
        [str(agent_binary("codex")), "exec", "--skip-git-repo-check", *args],
        {"CODEX_HOME": str(home), "OAI_PROXY_KEY": key},
        cwd,
    )


def opencode(url: str, key: str, cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """``opencode run`` with ``args``, with the proxy at ``url`` as an OpenAI-compatible
    provider in the user's ``opencode.json`` (the recipe in docs/clients-and-apis.md)."""
    config = cwd / "home" / ".config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "$schema": "https://opencode.ai/config.json",
                "provider": {
                    "oai-proxy": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "oai-proxy",
                        "options": {"baseURL": f"{url}/v1", "apiKey": "{env:OAI_PROXY_KEY}"},
                        "models": {"local-model": {"name": "local-model"}},
                    }
                },
                "model": "oai-proxy/local-model",
                "autoupdate": False,
                "share": "disabled",
            },
            indent=2,
        )
    )
    return run_agent(
        [str(agent_binary("opencode")), "run", *args],
        {"OAI_PROXY_KEY": key, "OPENCODE_DISABLE_MODELS_FETCH": "1"},
        cwd,
    )


def qwen_code(url: str, key: str, cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """``qwen`` with ``args``, with the proxy at ``url`` as an OpenAI provider in the user's
    ``~/.qwen/settings.json`` (the recipe in docs/clients-and-apis.md)."""
    settings = cwd / "home" / ".qwen" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(
        json.dumps(
            {
                "modelProviders": {
                    "openai": [
                        {
                            "id": "local-model",
                            "name": "local-model",
                            "baseUrl": f"{url}/v1",
                            "envKey": "OAI_PROXY_KEY",
                        }
                    ]
                },
                "security": {"auth": {"selectedType": "openai"}},
                "model": {"name": "local-model"},
                "memory": {"enableManagedAutoMemory": False, "enableManagedAutoDream": False},
                "privacy": {"usageStatisticsEnabled": False},
                "general": {"enableAutoUpdate": False},
            },
            indent=2,
        )
    )
    return run_agent([str(agent_binary("qwen")), *args], {"OAI_PROXY_KEY": key}, cwd)


def continue_cli(url: str, key: str, cwd: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """``cn`` with ``args`` and ``--config`` naming a config whose model is the proxy at
    ``url`` as an OpenAI provider (the recipe in docs/clients-and-apis.md)."""
    config = cwd / "home" / ".continue" / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"""name: oai-proxy
version: 1.0.0
schema: v1
models:
  - name: local-model
    provider: openai
    model: local-model
    apiBase: {url}/v1
    apiKey: {key}
    roles: [chat, edit, apply]
    capabilities: [tool_use]
""")
    return run_agent(
        [str(agent_binary("cn")), "--config", str(config), *args],
        {"CONTINUE_CLI_ENABLE_TELEMETRY": "0"},
        cwd,
    )
