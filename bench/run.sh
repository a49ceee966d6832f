#!/usr/bin/env bash
# The one benchmark command: every system side by side, on loopback, on this machine.
#
#   bench/run.sh                 full run (about 15-20 minutes on a quiet 2-core machine)
#   bench/run.sh --quick         the short profile (under 2 minutes)
#   bench/run.sh --publish       full run, then bench/published/ and the README's performance
#                                section refreshed from it (what the repository shows)
#   bench/run.sh --help          every option (bench.py's)
#
# Before measuring it installs what is missing and builds what is stale:
#   - Debian packages, by name (apt-get; needs root or sudo): knot, nsd, dnsdist, dnsperf, dig,
#     the Public Suffix List, python3-venv; BENCH_NO_INSTALL=1 skips this step
#   - the tree: scripts/build.sh (CMake + Ninja into build/, incremental)
#   - stock CoreDNS: deploy/coredns/install-stock.sh (go install of the pinned version, cached)
#   - bench/.build/venv: matplotlib for the plots (pip)
#   - bench/.build/domain-park-0.5.1: the original Python domain-park 0.5.1 and nserver 3.2.0
#     (pip), the system this project replaces
# then runs bench/bench.py with the arguments given, which writes bench/results/<stamp>/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VENV=$HERE/.build/venv
PYDP_VENV=$HERE/.build/domain-park-0.5.1
PYDP_PINS=(domain-park==0.5.1 nserver==3.2.0)
MATPLOTLIB_PIN="matplotlib>=3.6,<4"

log() { printf '[bench] %s\n' "$*" >&2; }

for a in "$@"; do
    case "$a" in -h|--help) exec python3 "$HERE/bench.py" --help ;; esac
done
# Bad arguments stop here, before anything is installed or built.
python3 "$HERE/bench.py" --check-args "$@"

# ------------------------------------------------------------------ packages
if [[ "${BENCH_NO_INSTALL:-0}" != 1 ]]; then
    need=()
    for pair in knotd:knot nsd:nsd dnsdist:dnsdist dnsperf:dnsperf dig:bind9-dnsutils taskset:util-linux \
                cmake:cmake ninja:ninja-build g++:g++; do
        command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
    done
    [[ -f /usr/share/publicsuffix/public_suffix_list.dat ]] || need+=(publicsuffix)
    python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
    if ((${#need[@]})); then
        SUDO=""
        [[ $(id -u) -eq 0 ]] || SUDO=sudo
        log "installing ${need[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

# ------------------------------------------------------------------ build
mkdir -p "$HERE/.build"
# An existing build directory is brought up to date by Ninja alone (it re-runs CMake when a
# CMakeLists.txt changed); a new one is configured by scripts/build.sh.
if [[ -f "$ROOT/build/build.ninja" ]]; then build=(cmake --build "$ROOT/build"); else build=("$ROOT/scripts/build.sh"); fi
log "building (${build[*]})"
if ! "${build[@]}" > "$HERE/.build/build.log" 2>&1; then
    tail -30 "$HERE/.build/build.log" >&2
    echo "bench/run.sh: the build failed (above; scripts/setup.sh installs its dependencies)" >&2
    exit 1
fi

coredns=""
if command -v go >/dev/null; then
    coredns=$("$ROOT/deploy/coredns/install-stock.sh" | tail -1) || coredns=""
fi
[[ -n "$coredns" ]] || log "no CoreDNS (needs Go): its rows are skipped"

# ------------------------------------------------------------------ Python environments
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "creating $VENV (matplotlib)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "$MATPLOTLIB_PIN"
fi
if [[ ! -x "$PYDP_VENV/bin/domain-park" ]]; then
    log "creating $PYDP_VENV (${PYDP_PINS[*]})"
    python3 -m venv "$PYDP_VENV"
    "$PYDP_VENV/bin/pip" install -q "${PYDP_PINS[@]}"
fi

exec "$VENV/bin/python" "$HERE/bench.py" --coredns-bin "$coredns" --pydp-venv "$PYDP_VENV" "$@"
