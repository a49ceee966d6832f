#!/usr/bin/env bash
# Install stock CoreDNS (no external plugins) at a pinned version with the Go toolchain, for the
# repository's root Corefile. Skips the work when the binary is already there.
#
#   deploy/coredns/install-stock.sh            # prints the binary path as its last line
#
# Environment: DP_CACHE (default ~/.cache/domain-park) holds the binary under
# bin/coredns-<version>-dir/coredns; COREDNS_VERSION (default v1.14.7); GOMODCACHE / GOCACHE as
# usual for Go (the module and build caches are reused between runs).
set -euo pipefail

version="${COREDNS_VERSION:-v1.14.7}"
cache="${DP_CACHE:-${HOME}/.cache/domain-park}"
dir="${cache}/bin/coredns-${version#v}-dir"
bin="${dir}/coredns"

fail() { echo "install-stock.sh: $*" >&2; exit 1; }

# The installed binary's version, read whole: `coredns -version | grep -q` would let grep exit at
# the first match, and CoreDNS writing the rest dies of SIGPIPE, which pipefail reports as a
# failed check (about 1 run in 100) and a needless reinstall.
installed=""
[[ -x "${bin}" ]] && installed="$("${bin}" -version 2>/dev/null || true)"
if [[ "${installed}" != *"CoreDNS-${version#v}"* ]]; then
    # Go is needed only to install.
    command -v go >/dev/null 2>&1 || fail "the Go toolchain (go) is not on PATH"
    mkdir -p "${dir}" || fail "cannot create ${dir}"
    log="$(mktemp)"
    trap 'rm -f "${log}"' EXIT
    if ! (cd "${dir}" && GOBIN="${dir}" go install -trimpath "github.com/coredns/coredns@${version}") >"${log}" 2>&1; then
        cat "${log}" >&2
        fail "go install github.com/coredns/coredns@${version} failed (output above)"
    fi
    [[ -x "${bin}" ]] || fail "go install finished but ${bin} is missing"
fi
echo "${bin}"
