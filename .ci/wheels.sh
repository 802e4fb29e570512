#!/usr/bin/env bash
# Build (once) and cache the native wheels the test suite needs: llama-cpp-python with its
# llama-server binary, and chatglm-cpp. A second run on the same machine reuses the cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# the versions setup.cfg pins
pinned() { sed -n "s/.*[ =]$1 *== *\([0-9.]*\).*/\1/p" setup.cfg | head -1; }
LLAMA_CPP_PYTHON_VERSION=$(pinned llama-cpp-python)
CHATGLM_CPP_VERSION=$(pinned chatglm-cpp)
WHEELS="${OAI_PROXY_WHEEL_CACHE:-$HOME/.cache/oai-proxy/wheels}"
JOBS="${OAI_PROXY_BUILD_JOBS:-2}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WHEELS"

have_wheel() { compgen -G "$WHEELS/$1-$2-*.whl" >/dev/null; }

if ! have_wheel llama_cpp_python "$LLAMA_CPP_PYTHON_VERSION"; then
  echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION with llama-server (several minutes)"
  CMAKE_ARGS="-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON -DLLAMA_TOOLS_INSTALL=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    "$PYTHON" -m pip wheel --no-deps --no-binary llama-cpp-python -w "$WHEELS" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
fi

if ! have_wheel chatglm_cpp "$CHATGLM_CPP_VERSION"; then
  echo "building chatglm-cpp $CHATGLM_CPP_VERSION (several minutes)"
  # Its setup.py runs an unbounded `make -j` and its sentencepiece needs CMake < 4: build with
  # Ninja (bounded parallelism) and an older CMake, outside pip's build isolation.
  tools=$(mktemp -d)
  "$PYTHON" -m venv "$tools"
  "$tools/bin/pip" install --quiet "cmake<4" ninja setuptools wheel
  PATH="$tools/bin:$PATH" CMAKE_GENERATOR=Ninja CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    "$tools/bin/pip" wheel --no-deps --no-build-isolation --no-binary chatglm-cpp -w "$WHEELS" \
      "chatglm-cpp==$CHATGLM_CPP_VERSION"
  rm -rf "$tools"
fi
echo "wheels in $WHEELS"
