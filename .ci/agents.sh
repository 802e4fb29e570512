#!/usr/bin/env bash
# Install (once) and cache what the e2e suite runs under Node against the proxy, from npm:
# Claude Code (Anthropic's Messages API), Codex CLI (OpenAI's Responses API), opencode, Qwen
# Code and Continue's CLI (OpenAI chat completions) and Ollama's JavaScript library. The CLIs
# ship their native binaries as npm packages of their own; nothing is fetched from elsewhere.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.330
CODEX_VERSION=0.169.0
OLLAMA_JS_VERSION=0.6.4
OPENCODE_VERSION=1.18.33
QWEN_CODE_VERSION=0.24.4
CONTINUE_CLI_VERSION=1.5.47
PREFIX="${OAI_PROXY_AGENTS:-$HOME/.cache/oai-proxy/agents}"

installed() {  # package, version
  local manifest="$PREFIX/node_modules/$1/package.json"
  [ -f "$manifest" ] && grep -q "\"version\": \"$2\"" "$manifest"
}

if ! installed @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" \
    || ! installed @openai/codex "$CODEX_VERSION" || ! installed ollama "$OLLAMA_JS_VERSION" \
    || ! installed opencode-ai "$OPENCODE_VERSION" \
    || ! installed @qwen-code/qwen-code "$QWEN_CODE_VERSION" \
    || ! installed @continuedev/cli "$CONTINUE_CLI_VERSION"; then
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" \
    "ollama@$OLLAMA_JS_VERSION" "opencode-ai@$OPENCODE_VERSION" \
    "@qwen-code/qwen-code@$QWEN_CODE_VERSION" "@continuedev/cli@$CONTINUE_CLI_VERSION"
fi
"$PREFIX/node_modules/.bin/claude" --version
"$PREFIX/node_modules/.bin/codex" --version
"$PREFIX/node_modules/.bin/opencode" --version
"$PREFIX/node_modules/.bin/qwen" --version
"$PREFIX/node_modules/.bin/cn" --version
node -e "require('$PREFIX/node_modules/ollama'); console.log('ollama-js $OLLAMA_JS_VERSION')"
echo "agent CLIs and Node libraries in $PREFIX"
