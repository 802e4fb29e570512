#!/usr/bin/env bash
# Build (once) and cache the native wheels the test suite needs: llama-cpp-python with its
# llama-server binary, and chatglm-cpp; stable-diffusion.cpp's sd-server, from the sources
# stable-diffusion-cpp-python's sdist carries; and keep the model families' chat templates that
# llama-cpp-python's sources carry (llama.cpp's models/templates), which the e2e tests give
# their tiny models, and llama.cpp's own server tests (tools/server/tests), the conformance
# tier's suite. A second run on the same machine reuses the cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# the versions setup.cfg pins
pinned() { sed -n "s/.*[ =]$1\(\[[a-z,]*\]\)\{0,1\} *== *\([0-9.]*\).*/\2/p" setup.cfg | head -1; }
LLAMA_CPP_PYTHON_VERSION=$(pinned llama-cpp-python)
CHATGLM_CPP_VERSION=$(pinned chatglm-cpp)
WHEELS="${OAI_PROXY_WHEEL_CACHE:-$HOME/.cache/oai-proxy/wheels}"
JOBS="${OAI_PROXY_BUILD_JOBS:-2}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WHEELS"

have_wheel() { compgen -G "$WHEELS/$1-$2-*.whl" >/dev/null; }

TEMPLATES="${OAI_PROXY_TEMPLATES:-$WHEELS/llama.cpp-templates}"
SUITE="$WHEELS/llama.cpp-server-tests"
if ! have_wheel llama_cpp_python "$LLAMA_CPP_PYTHON_VERSION" \
    || ! [ -f "$TEMPLATES/$LLAMA_CPP_PYTHON_VERSION" ] \
    || ! [ -f "$SUITE/$LLAMA_CPP_PYTHON_VERSION" ]; then
  sources=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$sources" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  sdist="$sources/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  if ! have_wheel llama_cpp_python "$LLAMA_CPP_PYTHON_VERSION"; then
    echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION with llama-server (several minutes)"
    # llama-server comes with llama.cpp's other tools, which the tests never run: left out,
    # they save a fresh machine a few minutes (the server, its UI and mtmd stay)
    tar -xzf "$sdist" -C "$sources"
    tree="$sources/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
    sed -i -E '/add_subdirectory\((batched-bench|gguf-split|imatrix|llama-bench|completion|perplexity|quantize|cli|tokenize|tts|cvector-generator|export-lora|fit-params|results)\)/d' \
      "$tree/vendor/llama.cpp/tools/CMakeLists.txt"
    CMAKE_ARGS="-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON -DLLAMA_TOOLS_INSTALL=ON -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
      "$PYTHON" -m pip wheel --no-deps -w "$WHEELS" "$tree"
  fi
  rm -rf "$TEMPLATES" && mkdir -p "$TEMPLATES"
  tar -xzf "$sdist" -C "$TEMPLATES" --strip-components=5 --wildcards \
    "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/models/templates/*.jinja"
  touch "$TEMPLATES/$LLAMA_CPP_PYTHON_VERSION"  # which sources they came from
  rm -rf "$SUITE" && mkdir -p "$SUITE"
  tar -xzf "$sdist" -C "$SUITE" --strip-components=6 \
    "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/tools/server/tests"
  touch "$SUITE/$LLAMA_CPP_PYTHON_VERSION"
  rm -rf "$sources"
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
# sd-server alone (no Python package): CPU only, without its web page, WebP or WebM
SD_CPP_PYTHON_VERSION=0.4.7
SD_SERVER="$WHEELS/sd-server/$SD_CPP_PYTHON_VERSION/sd-server"
if ! [ -x "$SD_SERVER" ]; then
  echo "building sd-server from stable-diffusion-cpp-python $SD_CPP_PYTHON_VERSION (minutes)"
  sources=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$sources" \
    "stable-diffusion-cpp-python==$SD_CPP_PYTHON_VERSION"
  tar -xzf "$sources/stable_diffusion_cpp_python-$SD_CPP_PYTHON_VERSION.tar.gz" -C "$sources"
  cmake -S "$sources/stable_diffusion_cpp_python-$SD_CPP_PYTHON_VERSION/vendor/stable-diffusion.cpp" \
    -B "$sources/build" -DCMAKE_BUILD_TYPE=Release -DSD_BUILD_EXAMPLES=ON \
    -DSD_SERVER_BUILD_FRONTEND=OFF -DSD_WEBP=OFF -DSD_WEBM=OFF -DGGML_NATIVE=OFF \
    >"$sources/build.log" 2>&1 &&
  cmake --build "$sources/build" --target sd-server -j "$JOBS" >>"$sources/build.log" 2>&1 ||
    { tail -40 "$sources/build.log"; exit 1; }
  mkdir -p "$(dirname "$SD_SERVER")"
  cp "$sources/build/bin/sd-server" "$SD_SERVER"
  rm -rf "$sources"
fi
echo "wheels in $WHEELS"
