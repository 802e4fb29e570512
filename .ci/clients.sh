#!/usr/bin/env bash
# Install (once) and cache the libraries and tools people point at local models, which the
# e2e suite runs against the proxy: from npm, the Vercel AI SDK, LangChain JS and Continue's
# model adapters (its autocomplete's fill-in-the-middle; the ollama npm client comes with
# .ci/agents.sh); from PyPI, LiteLLM (its SDK, and its proxy as an OpenAI-compatible
# upstream: litellm's "proxy" extra names a distribution PyPI does not have, so its
# modules' imports are pinned here one by one), Simon Willison's llm, LlamaIndex's
# OpenAILike and Ollama classes and aider, each in a virtual environment of its own (they pin
# versions that conflict with each other and with the proxy's).
set -euo pipefail

AI_VERSION=7.0.173
AI_SDK_OPENAI_COMPATIBLE_VERSION=3.0.92
LANGCHAIN_OPENAI_VERSION=1.6.0
LANGCHAIN_CORE_VERSION=1.4.0
ZOD_VERSION=4.6.7
CONTINUE_ADAPTERS_VERSION=1.37.0
LITELLM_VERSION=1.110.2
LLM_VERSION=0.36
LLAMA_INDEX_OPENAI_LIKE_VERSION=0.8.1
LLAMA_INDEX_OLLAMA_VERSION=0.11.0
AIDER_VERSION=0.86.2
LITELLM_PROXY=(
  apscheduler==3.11.3 backoff==2.2.1 cryptography==50.0.2 expression==5.8.0 fastapi==0.165.0
  fastapi-sso==0.23.0 mcp==2.3.0 orjson==3.13.0 pyjwt==2.15.1 python-multipart==0.0.34
  pyyaml==6.0.4 redis==8.1.0 semver==3.1.2 soundfile==0.14.0 uvicorn==0.54.0 uvloop==0.23.0
  websockets==17.4
)
CLIENTS="${OAI_PROXY_CLIENTS:-$HOME/.cache/oai-proxy/clients}"
NODE_PREFIX="$CLIENTS/node"

node_installed() {  # package, version
  local manifest="$NODE_PREFIX/node_modules/$1/package.json"
  [ -f "$manifest" ] && grep -q "\"version\": \"$2\"" "$manifest"
}

if ! node_installed ai "$AI_VERSION" \
    || ! node_installed @ai-sdk/openai-compatible "$AI_SDK_OPENAI_COMPATIBLE_VERSION" \
    || ! node_installed @langchain/openai "$LANGCHAIN_OPENAI_VERSION" \
    || ! node_installed @langchain/core "$LANGCHAIN_CORE_VERSION" \
    || ! node_installed zod "$ZOD_VERSION" \
    || ! node_installed @continuedev/openai-adapters "$CONTINUE_ADAPTERS_VERSION"; then
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error \
    "ai@$AI_VERSION" "@ai-sdk/openai-compatible@$AI_SDK_OPENAI_COMPATIBLE_VERSION" \
    "@langchain/openai@$LANGCHAIN_OPENAI_VERSION" "@langchain/core@$LANGCHAIN_CORE_VERSION" \
    "zod@$ZOD_VERSION" "@continuedev/openai-adapters@$CONTINUE_ADAPTERS_VERSION"
fi
for package in ai @ai-sdk/openai-compatible @langchain/openai @langchain/core zod \
    @continuedev/openai-adapters; do
  node -e "const p = require('$NODE_PREFIX/node_modules/$package/package.json');
           console.log(p.name + ' ' + p.version)"
done

python_installed() {  # venv, distribution==version...
  local venv="$CLIENTS/$1"
  shift
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$@" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for wanted in sys.argv[1:]:
    name, _, pinned = wanted.partition("==")
    try:
        if version(name) != pinned:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

python_client() {  # venv, distribution==version...
  local venv="$CLIENTS/$1"
  if ! python_installed "$@"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # not byte-compiled here: that is CPU the native builds beside it want, and a client
    # compiles the modules it imports, once, on its first run
    "$venv/bin/pip" install --quiet --no-compile "${@:2}"
    python_installed "$@"
  fi
  echo "$1: ${*:2}"
}

python_client litellm "litellm==$LITELLM_VERSION" "${LITELLM_PROXY[@]}"
python_client llm "llm==$LLM_VERSION"
python_client llamaindex "llama-index-llms-openai-like==$LLAMA_INDEX_OPENAI_LIKE_VERSION" \
  "llama-index-llms-ollama==$LLAMA_INDEX_OLLAMA_VERSION"
python_client aider "aider-chat==$AIDER_VERSION"
echo "client libraries and tools in $CLIENTS"
