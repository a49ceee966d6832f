#!/usr/bin/env bash
# Vet and unit-test the coredns-park module (the rrl plugin's tests run on a fake clock), and
# check that Corefile.rrl is still the root Corefile plus its rrl block.
#
#   deploy/coredns/test.sh [go test flags...]     e.g. -race, -run TestSlipRatio, -v
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root_corefile="${here}/../../Corefile"
fail() { echo "test.sh: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || fail "the Go toolchain (go) is not on PATH"

# Directives only: no comment or blank lines, no rrl block.
directives() { grep -Ev '^[[:space:]]*(#|$)' "$1" | sed '/^    rrl\b.*{$/,/^    }$/d; /^    rrl\b/d'; }
if ! diff -u <(directives "${root_corefile}") <(directives "${here}/Corefile.rrl") >&2; then
    fail "deploy/coredns/Corefile.rrl differs from the root Corefile outside its rrl block (diff above)"
fi

cd "${here}"
go vet -mod=readonly ./...
go test -mod=readonly "$@" ./...
