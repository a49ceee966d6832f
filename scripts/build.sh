#!/usr/bin/env bash
# Configures and builds into build/ (Release, warnings are errors).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON \
      -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build
