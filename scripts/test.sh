#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: unit and end-to-end tests in a Release
# build, then again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# CoreDNS for the front-end tests: stock (pinned, go install) and our rrl build. Both are
# cached under ~/.cache/domain-park with Go's module and build caches, so only the first
# run on a machine pays for them (about 3.5 minutes).
DP_COREDNS=$(deploy/coredns/install-stock.sh | tail -1)
DP_COREDNS_PARK=$(deploy/coredns/build.sh | tail -1)
export DP_COREDNS DP_COREDNS_PARK
ctest --test-dir build --output-on-failure

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDP_WERROR=ON -DDP_SANITIZE=ON -DDP_BUILD_BENCH=OFF \
      -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure
