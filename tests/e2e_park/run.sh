#!/usr/bin/env bash
# Runs the fake-internet tests (checkdmarc through unbound, domain-park-check) inside a network
# namespace of their own: a private loopback where every server listens on port 53 as on the
# internet, and nothing reaches or disturbs the host's network. `unshare -rn` works as root and,
# where the kernel allows user namespaces, as any user.
#
#   tests/e2e_park/run.sh [pytest arguments...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ "${DP_PARK_NETNS:-}" != 1 ]]; then
    exec unshare -rn -- env DP_PARK_NETNS=1 "${BASH_SOURCE[0]}" "$@"
fi
ip link set lo up
exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider "${here}" "$@"
