#!/usr/bin/env bash
# Builds the Debian packages the Ansible roles put on the name servers, once, on the controller:
#
#   deploy/package.sh [OUTDIR]        # default build-pkg/; prints the package paths
#
#   OUTDIR/domain-park.deb          domain-park-worker, domain-park-balancer (Release, stripped),
#                                   the systemd units (deploy/systemd) and wait-ready, the
#                                   example configurations; Depends computed from the binaries
#   OUTDIR/domain-park-coredns.deb  coredns-park (deploy/coredns/build.sh, needs Go, or the binary
#                                   in $DP_COREDNS_PARK); DP_PACKAGE_COREDNS=0 skips it
#
# DP_BUILD_DIR=build reuses an existing build tree instead of making build-pkg/build.
# The version is the project's (CMakeLists.txt) plus "+<commits>.g<commit>" (".dirty" for a
# changed tree); DP_PACKAGE_VERSION sets another. The packages never start, stop or restart a
# service: the roles (ansible/) do, one worker at a time. Installing them reloads systemd's unit
# files; removing domain-park stops domain-park.target first.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-${repo}/build-pkg}" && cd "${1:-${repo}/build-pkg}" && pwd)"
fail() { echo "package.sh: $*" >&2; exit 1; }
for t in cmake dpkg-deb dpkg git; do command -v "$t" >/dev/null || fail "$t is not installed"; done

arch=$(dpkg --print-architecture)
base=$(sed -n 's/^project(domain_park VERSION \([0-9.]*\).*/\1/p' "${repo}/CMakeLists.txt")
[[ -n "${base}" ]] || fail "no project version in CMakeLists.txt"
if [[ -z "${DP_PACKAGE_VERSION:-}" ]]; then
  if git -C "${repo}" rev-parse --git-dir >/dev/null 2>&1; then
    version="${base}+$(git -C "${repo}" rev-list --count HEAD).g$(git -C "${repo}" rev-parse --short=10 HEAD)"
    git -C "${repo}" diff --quiet HEAD -- 2>/dev/null || version+=".dirty"
  else
    version="${base}"
  fi
else
  version="${DP_PACKAGE_VERSION}"
fi

# Its own Release build, or an existing one ($DP_BUILD_DIR, e.g. scripts/build.sh's build/:
# the install prefix is given at install time).
if [[ -n "${DP_BUILD_DIR:-}" ]]; then
  build="$(cd "${DP_BUILD_DIR}" && pwd)"
else
  build="${out}/build"
  cmake -S "${repo}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_WERROR=ON -DDP_BUILD_TESTS=OFF \
        -DDP_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "${build}" --target domain-park-worker domain-park-balancer >/dev/null

# The run-time dependencies: the Debian packages owning the libraries the binaries load.
depends() {
  local libs
  libs=$(for b in "$@"; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
  for l in ${libs}; do
    dpkg -S "$(readlink -f "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null || dpkg -S "/usr$l" 2>/dev/null ||
      fail "no Debian package owns $l"
  done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g'
}

# control NAME STAGE DEPENDS DESCRIPTION...
control() {
  local name=$1 stage=$2 deps=$3
  shift 3
  mkdir -p "${stage}/DEBIAN"
  {
    echo "Package: ${name}"
    echo "Version: ${version}"
    echo "Architecture: ${arch}"
    echo "Maintainer: domain-park <hostmaster@park.invalid>"
    echo "Section: net"
    echo "Priority: optional"
    [[ -z "${deps}" ]] || echo "Depends: ${deps}"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "${stage}" | cut -f1)"
    printf 'Description: %s\n' "$1"
    shift
    for line in "$@"; do printf ' %s\n' "${line}"; done
  } >"${stage}/DEBIAN/control"
}

# A maintainer script that reloads systemd's view of the unit files, never a service.
reload_script() {
  cat >"$1" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SH
  chmod 0755 "$1"
}

pack() {
  local stage=$1 deb=$2
  find "${stage}" -type d -exec chmod 0755 {} +
  dpkg-deb --root-owner-group -Zgzip --build "${stage}" "${deb}.tmp" >/dev/null
  mv -f "${deb}.tmp" "${deb}"
  echo "${deb}"
}

stage="${out}/stage-domain-park"
rm -rf "${stage}"
DESTDIR="${stage}" cmake --install "${build}" --prefix /usr --strip >/dev/null
install -D -m 0644 "${repo}/deploy/worker.example.json" "${stage}/usr/share/doc/domain-park/examples/worker.json"
install -D -m 0644 "${repo}/deploy/balancer.example.json" "${stage}/usr/share/doc/domain-park/examples/balancer.json"
control domain-park "${stage}" "$(depends "${stage}/usr/bin/domain-park-worker" "${stage}/usr/bin/domain-park-balancer"), systemd" \
  "authoritative name server for parked domains (workers and balancer)" \
  "domain-park answers for any registrable domain with the records that stop mail" \
  "and certificates in its name: SPF -all, DMARC p=reject, revoked DKIM, null MX, CAA."
reload_script "${stage}/DEBIAN/postinst"
reload_script "${stage}/DEBIAN/postrm"
cat >"${stage}/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl stop domain-park.target || true; fi
SH
chmod 0755 "${stage}/DEBIAN/prerm"
pack "${stage}" "${out}/domain-park.deb"

if [[ "${DP_PACKAGE_COREDNS:-1}" != 0 ]]; then
  coredns="${DP_COREDNS_PARK:-$("${repo}/deploy/coredns/build.sh" | tail -1)}"
  [[ -x "${coredns}" ]] || fail "coredns-park binary ${coredns} is not executable"
  stage="${out}/stage-domain-park-coredns"
  rm -rf "${stage}"
  install -D -m 0755 "${coredns}" "${stage}/usr/bin/coredns-park"
  control domain-park-coredns "${stage}" "" \
    "CoreDNS front end for domain-park (coredns-park)" \
    "CoreDNS with the stock plugins domain-park uses and its rrl plugin (deploy/coredns);" \
    "domain-park-coredns.service (in domain-park) runs it."
  pack "${stage}" "${out}/domain-park-coredns.deb"
fi
