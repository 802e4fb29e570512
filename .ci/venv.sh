#!/usr/bin/env bash
# The project's virtual environment, with the native wheels .ci/wheels.sh built: it needs
# nothing of the old servers, so .ci/run makes it while they build.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .venv
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet --find-links "${OAI_PROXY_WHEEL_CACHE:-$HOME/.cache/oai-proxy/wheels}" \
  -e '.[test,chatglm,bench]'
