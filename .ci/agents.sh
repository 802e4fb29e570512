#!/usr/bin/env bash
# Install (once) and cache what the e2e suite runs under Node against the proxy, from npm:
# Claude Code (Anthropic's Messages API), Codex CLI (OpenAI's Responses API), opencode, Qwen
# Code and Continue's CLI (OpenAI chat completions), Ollama's JavaScript library, and the MCP
# servers the gateway runs as hosted tools (the reference filesystem and everything servers).
# The CLIs ship their native binaries as npm packages of their own; nothing is fetched from
# elsewhere.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.330
CODEX_VERSION=0.169.0
OLLAMA_JS_VERSION=0.6.4
OPENCODE_VERSION=1.18.33
QWEN_CODE_VERSION=0.24.4
CONTINUE_CLI_VERSION=1.5.47
MCP_FILESYSTEM_VERSION=2026.8.31
MCP_EVERYTHING_VERSION=2026.8.31
PREFIX="${OAI_PROXY_AGENTS:-$HOME/.cache/oai-proxy/agents}"

installed() {  # package, version
  local manifest="$PREFIX/node_modules/$1/package.json"
  [ -f "$manifest" ] && grep -q "\"version\": \"$2\"" "$manifest"
}

if ! installed @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" \
    || ! installed @openai/codex "$CODEX_VERSION" || ! installed ollama "$OLLAMA_JS_VERSION" \
    || ! installed opencode-ai "$OPENCODE_VERSION" \
    || ! installed @qwen-code/qwen-code "$QWEN_CODE_VERSION" \
    || ! installed @continuedev/cli "$CONTINUE_CLI_VERSION" \
    || ! installed @modelcontextprotocol/server-filesystem "$MCP_FILESYSTEM_VERSION" \
    || ! installed @modelcontextprotocol/server-everything "$MCP_EVERYTHING_VERSION"; then
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" \
    "ollama@$OLLAMA_JS_VERSION" "opencode-ai@$OPENCODE_VERSION" \
    "@qwen-code/qwen-code@$QWEN_CODE_VERSION" "@continuedev/cli@$CONTINUE_CLI_VERSION" \
    "@modelcontextprotocol/server-filesystem@$MCP_FILESYSTEM_VERSION" \
    "@modelcontextprotocol/server-everything@$MCP_EVERYTHING_VERSION"
fi
"$PREFIX/node_modules/.bin/claude" --version
"$PREFIX/node_modules/.bin/codex" --version
"$PREFIX/node_modules/.bin/opencode" --version
"$PREFIX/node_modules/.bin/qwen" --version
"$PREFIX/node_modules/.bin/cn" --version
node -e "require('$PREFIX/node_modules/ollama'); console.log('ollama-js $OLLAMA_JS_VERSION')"
for server in mcp-server-filesystem mcp-server-everything; do
  [ -x "$PREFIX/node_modules/.bin/$server" ] || { echo "no $server in $PREFIX" >&2; exit 1; }
done
echo "agent CLIs and Node libraries in $PREFIX"
