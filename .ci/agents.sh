#!/usr/bin/env bash
# Install (once) and cache the agent CLIs the e2e suite runs against the proxy, from npm:
# Claude Code (Anthropic's Messages API) and Codex CLI (OpenAI's Responses API). Both ship
# their native binaries as npm packages of their own; nothing is fetched from elsewhere.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.330
CODEX_VERSION=0.169.0
PREFIX="${OAI_PROXY_AGENTS:-$HOME/.cache/oai-proxy/agents}"

installed() {  # package, version
  local manifest="$PREFIX/node_modules/$1/package.json"
  [ -f "$manifest" ] && grep -q "\"version\": \"$2\"" "$manifest"
}

if ! installed @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" \
    || ! installed @openai/codex "$CODEX_VERSION"; then
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION"
fi
"$PREFIX/node_modules/.bin/claude" --version
"$PREFIX/node_modules/.bin/codex" --version
echo "agent CLIs in $PREFIX"
