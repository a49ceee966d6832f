#!/usr/bin/env bash
# Build coredns-park (CoreDNS with the stock plugins domain-park uses plus this module's rrl
# plugin) with the Go toolchain, reusing Go's module and build caches. Skips the build when the
# binary is newer than every source file of the module.
#
#   deploy/coredns/build.sh            # prints the binary path as its last line
#
# Environment: DP_CACHE (default ~/.cache/domain-park) holds the binary as bin/coredns-park;
# GOMODCACHE / GOCACHE as usual for Go (keep them between CI runs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DP_CACHE:-${HOME}/.cache/domain-park}"
bin="${cache}/bin/coredns-park"

fail() { echo "build.sh: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || fail "the Go toolchain (go) is not on PATH"

sources() { find "${here}" -type f \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \); }

if [[ -x "${bin}" ]] && [[ -z "$(sources | while read -r f; do [[ "${f}" -nt "${bin}" ]] && echo "${f}"; done)" ]]; then
    echo "${bin}"
    exit 0
fi

mkdir -p "${cache}/bin" || fail "cannot create ${cache}/bin"
log="$(mktemp)"
trap 'rm -f "${log}" "${bin}.tmp"' EXIT
# -mod=readonly: go.mod and go.sum pin every version; a build never edits them.
if ! (cd "${here}" && go build -trimpath -mod=readonly -o "${bin}.tmp" .) >"${log}" 2>&1; then
    cat "${log}" >&2
    fail "go build failed in ${here} (output above)"
fi
mv -f "${bin}.tmp" "${bin}"
echo "${bin}"
