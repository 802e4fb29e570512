#!/usr/bin/env bash
# The project's wheel, installed alone (no extras) into a bare virtual environment of the
# oldest Python setup.cfg's python_requires allows, starts and serves: proof that
# install_requires names everything the app imports and that this Python runs it. The
# upstream it is given is not there, which the proxy logs and serves on. Every dependency
# must come as a wheel (--only-binary): a source build here would be a long one, and on a
# newcomer's machine it would want a compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

OLDEST=$(sed -n 's/^python_requires *= *>= *\([0-9][0-9.]*\) *$/\1/p' setup.cfg)
[ -n "$OLDEST" ] || { echo "setup.cfg has no python_requires = >= X.Y" >&2; exit 1; }

interpreter() {  # python$OLDEST that makes virtual environments: on PATH, else pyenv's
  local candidates=() candidate
  candidate=$(command -v "python$OLDEST" || true)  # pyenv's shim is there but may not run
  [ -z "$candidate" ] || candidates+=("$candidate")
  if command -v pyenv >/dev/null; then
    candidates+=($(ls -d "$(pyenv root)/versions/$OLDEST".*/bin/"python$OLDEST" 2>/dev/null | sort -rV || true))
  fi
  candidates+=($(ls -d /root/.pyenv/versions/"$OLDEST".*/bin/"python$OLDEST" 2>/dev/null | sort -rV || true))
  for candidate in "${candidates[@]}"; do
    if "$candidate" -c 'import ensurepip, venv' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "no Python $OLDEST (setup.cfg's oldest) that makes a virtual environment; tried:" \
    "python$OLDEST on PATH, \$(pyenv root)/versions/$OLDEST.*, /root/.pyenv/versions/$OLDEST.*" \
    "${candidates[*]:+(found but unusable: ${candidates[*]})}" >&2
  return 1
}
PYTHON=$(interpreter)
echo "$("$PYTHON" --version) at $PYTHON"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# built from a copy of the tracked files: the checkout's own build folders stay as they are
# (.ci/venv.sh installs from it meanwhile)
mkdir "$work/source"
git ls-files -z | while IFS= read -r -d '' tracked; do
  [ ! -f "$tracked" ] || cp --parents "$tracked" "$work/source"  # a file deleted here is not
done
"$PYTHON" -m venv "$work/venv"
venv=$work/venv/bin
"$venv/pip" install --quiet --upgrade pip
"$venv/pip" wheel --quiet --no-deps -w "$work/dist" "$work/source"
# not byte-compiled: CPU the native builds beside it want
"$venv/pip" install --quiet --no-compile --only-binary :all: "$work"/dist/oai_proxy-*.whl
"$venv/pip" list --format=freeze | paste -sd ' '

# started from a folder of its own, as a newcomer would, in front of an upstream that is
# not there: it logs that and serves
cd "$work"
"$venv/python" - "$venv/oai-proxy" <<'PY'
"""Start the proxy, wait for it to answer /health (any HTTP status: the upstream is missing),
then stop it; fail with its log if it exits first."""
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


port, nothing = free_port(), free_port()
command = [sys.argv[1], "--port", str(port), "--llama-api", f"http://127.0.0.1:{nothing}"]
print(" ".join(command[1:]))
with open("proxy.log", "wb") as log:
    proxy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
try:
    deadline = time.monotonic() + 120  # only a hang reaches it
    while proxy.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as answer:
            status, body = answer.code, answer.read()
        except OSError:  # not listening yet
            time.sleep(0.2)
            continue
        print(f"GET /health: {status} {body.decode(errors='replace')[:300]}")
        break
    else:
        how = f"exited with {proxy.returncode}" if proxy.poll() is not None else "hung"
        sys.exit(f"oai-proxy {how} before it served:\n" + open("proxy.log").read())
finally:
    proxy.terminate()
    try:
        proxy.wait(30)
    except subprocess.TimeoutExpired:
        proxy.kill()
        proxy.wait()
PY
