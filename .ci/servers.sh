#!/usr/bin/env bash
# Build (once) and cache the two old server.cpp generations the e2e suite runs against. Each
# llama-cpp-python sdist of its day vendors the whole llama.cpp tree, server included:
#   0.2.18  PowerInfer's server.cpp line for line (generation "powerinfer")
#   0.2.27  llama.cpp's server of late December 2023 (generation "llamacpp-2023")
# The binaries land in $SERVERS/<version>/server; a second run reuses them.
set -euo pipefail

WHEELS="${OAI_PROXY_WHEEL_CACHE:-$HOME/.cache/oai-proxy/wheels}"
SERVERS="${OAI_PROXY_SERVER_CACHE:-$WHEELS/servers}"
JOBS="${OAI_PROXY_BUILD_JOBS:-2}"
PYTHON="${PYTHON:-python3}"

for version in 0.2.18 0.2.27; do
  target="$SERVERS/$version/server"
  if [ -x "$target" ]; then
    continue
  fi
  echo "building the server.cpp vendored by llama-cpp-python $version (about a minute)"
  work=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$work" \
    "llama-cpp-python==$version"
  tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
  source_dir="$work/llama_cpp_python-$version/vendor/llama.cpp"
  cmake -S "$source_dir" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_NATIVE=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DBUILD_SHARED_LIBS=OFF >"$work/configure.log" 2>&1 \
    || { cat "$work/configure.log"; exit 1; }
  cmake --build "$work/build" -j "$JOBS" --target server >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; exit 1; }
  mkdir -p "$(dirname "$target")"
  cp "$work/build/bin/server" "$target.tmp" && mv "$target.tmp" "$target"
  rm -rf "$work"
done
echo "old servers in $SERVERS"
