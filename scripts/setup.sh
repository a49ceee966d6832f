#!/usr/bin/env bash
# Installs what building and testing domain-park needs on Debian 12 (idempotent, quick when done).
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config
          libuv1-dev libc-ares-dev nlohmann-json3-dev doctest-dev prometheus-cpp-dev libpsl-dev publicsuffix
          dnsutils knot-dnsutils curl python3 python3-pip
          clang libfuzzer-14-dev
          # deployment (issue 9): sd_notify; the booted-host test's containers, namespaces and
          # ssh; promtool and a real Prometheus for the alert and dashboard tests
          libsystemd-dev systemd-container debootstrap iproute2 openssh-client python3-venv
          prometheus
          # the fake internet of tests/e2e_park (knotd, unbound, namespaces), DoT/DoH certificates
          knot unbound util-linux openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go builds CoreDNS for the front-end tests; CoreDNS 1.14 needs Go >= 1.25, and Go >= 1.21
# fetches a newer toolchain itself (GOTOOLCHAIN) when a go.mod asks for one. Debian 12 ships
# Go 1.19, so without a usable Go we install it and fetch the official toolchain module
# (golang.org/toolchain, the one GOTOOLCHAIN uses) from the Go module proxy.
go_minor() { go version 2>/dev/null | sed -n 's/.*go1\.\([0-9]*\).*/\1/p'; }
if ! command -v go >/dev/null || [ "$(go_minor)" -lt 21 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  command -v go >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq golang-go >/dev/null
  toolchain="golang.org/toolchain@v0.0.1-go1.25.5.linux-$(dpkg --print-architecture)"
  echo "setup: fetching Go toolchain $toolchain"
  dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "$toolchain" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  $SUDO ln -sf "$dir/bin/go" /usr/local/bin/go
  hash -r
fi

# Python test clients (dnspython, pytest) for whichever python3 is first on PATH.
if ! python3 -c "import dns.message, pytest, prometheus_client" 2>/dev/null; then
  echo "setup: installing dnspython, pytest and prometheus-client for $(command -v python3)"
  python3 -m pip install -q dnspython pytest prometheus-client 2>/dev/null \
    || python3 -m pip install -q --break-system-packages dnspython pytest prometheus-client 2>/dev/null \
    || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo";
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-dnspython python3-pytest python3-prometheus-client >/dev/null; }
fi
python3 -c "import dns.message, pytest" || { echo "setup: dnspython/pytest unavailable for python3" >&2; exit 1; }

# Tools with pinned dependencies, each in a venv of its own so they never meet the test
# clients': ${DP_CACHE:-~/.cache/domain-park}/venv-NAME, made again when its pins change.
pinned_venv() {
  local venv=$1
  shift
  if ! "${venv}/bin/python" -c 'import sys; sys.exit(0 if open(sys.argv[1]).read().split() == sys.argv[2:] else 1)' \
         "${venv}/pins" "$@" 2>/dev/null; then
    echo "setup: installing $* into ${venv}"
    rm -rf "${venv}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install -q "$@"
    echo "$*" >"${venv}/pins"
  fi
}
# Ansible, ansible-lint and yamllint for the deployment (ansible/).
pinned_venv "${DP_CACHE:-${HOME}/.cache/domain-park}/venv-ansible" ansible-core==2.19.14 ansible-lint==26.10.1 yamllint==1.38.0
# checkdmarc (what domain owners run) judges parked domains in tests/e2e_park.
pinned_venv "${DP_CACHE:-${HOME}/.cache/domain-park}/venv-checkdmarc" checkdmarc==6.0.4
