#!/usr/bin/env bash
# Install (once) and cache Open WebUI, from PyPI, in a virtual environment of its own: the
# e2e tier starts it against the proxy and drives its page in Chromium. Its embedding and
# speech models stay unloaded (the test runs it offline); torch comes first, pinned, as a
# CPU build, so that its dependencies take that one rather than a GPU build.
set -euo pipefail

OPEN_WEBUI_VERSION=0.12.4
TORCH_VERSION=2.13.0
PREFIX="${OAI_PROXY_WEBUI:-$HOME/.cache/oai-proxy/webui}"
PYTHON="${PYTHON:-python3}"
VENV="$PREFIX/venv"

installed() {  # distribution, version (a local build's +suffix aside)
  [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c \
    "import importlib.metadata as m; print(m.version('$1').split('+')[0])" 2>/dev/null)" = "$2" ]
}

if ! installed open-webui "$OPEN_WEBUI_VERSION" || ! installed torch "$TORCH_VERSION"; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  # not byte-compiled here (some 24,000 files): that is CPU the native builds beside it
  # want, and Open WebUI compiles the modules it imports, once, on its first start
  "$VENV/bin/pip" install --quiet --no-compile "torch==$TORCH_VERSION"
  "$VENV/bin/pip" install --quiet --no-compile "open-webui==$OPEN_WEBUI_VERSION" "torch==$TORCH_VERSION"
fi
installed open-webui "$OPEN_WEBUI_VERSION"
echo "open-webui $OPEN_WEBUI_VERSION in $VENV"
