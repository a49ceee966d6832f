#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: unit and end-to-end tests in a Release build
# with g++, then again built by clang under AddressSanitizer + UndefinedBehaviorSanitizer,
# with the libFuzzer targets run for a bounded time each.
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

# The second build is clang's, so the tree builds warning-free with both compilers: the whole
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer, and the libFuzzer targets,
# each run for DP_FUZZ_SECONDS (default 60) over its seed corpus (tests/fuzz/README.md).
echo "== clang build with ASan + UBSan and the libFuzzer targets"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DDP_WERROR=ON \
      -DDP_SANITIZE=ON -DDP_FUZZ=ON -DDP_FUZZ_SECONDS="${DP_FUZZ_SECONDS:-60}" -DDP_BUILD_BENCH=OFF \
      -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
ctest --test-dir build-asan --output-on-failure -E '^libfuzzer_'
# The fuzzers are single-threaded and CPU-bound: two at a time.
ctest --test-dir build-asan --output-on-failure -R '^libfuzzer_' -j 2
