#!/usr/bin/env bash
# Builds (once) the Debian 12 root the booted-host test boots with systemd-nspawn, and prints
# its path as the last line. The root is cached like Go's caches: under
# ${DP_CACHE:-~/.cache/domain-park}/nspawn/<key>/root, where <key> is a hash of this script,
# so a change to the package list below builds a new root and the old one is removed.
#
# The packages are what a fresh Debian 12 name server has after the playbook's apt tasks: the
# test hosts have no route to a package mirror, so the roles find them installed (the tasks
# still run and report "ok"). The mirror is the one this machine's apt already uses.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${DP_CACHE:-${HOME}/.cache/domain-park}/nspawn"
fail() { echo "make_root.sh: $*" >&2; exit 1; }

packages=(
  # boot and manage
  systemd systemd-sysv dbus python3 python3-apt openssh-server iproute2 procps
  # the base role
  nftables unattended-upgrades bind9-dnsutils
  # the domain_park .deb's run-time libraries
  libuv1 libpsl5 publicsuffix libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 libcivetweb1
  # the monitoring role
  prometheus prometheus-node-exporter
)
suite=bookworm

key=$( { cat "${BASH_SOURCE[0]}"; echo "${packages[*]}"; } | sha256sum | cut -c1-16)
dir="${cache}/${key}"
if [[ -f "${dir}/done" ]]; then
  echo "${dir}/root"
  exit 0
fi

command -v debootstrap >/dev/null || fail "debootstrap is not installed (scripts/setup.sh installs it)"
[[ "$(id -u)" -eq 0 ]] || fail "debootstrap needs root"

# The Debian mirror this machine's apt already uses for ${suite} (apt itself reads the sources).
mirror=$(apt-get indextargets --format '$(REPO_URI) $(CODENAME)' 'Created-By: Packages' 2>/dev/null |
         awk -v s="${suite}" '$2 == s {print $1; exit}' || true)
[[ -n "${mirror}" ]] || fail "no apt source for ${suite} found in /etc/apt to take the mirror from"

# Old roots of earlier package lists are of no further use.
if [[ -d "${cache}" ]]; then
  for old in "${cache}"/*/; do
    [[ "${old}" == "${dir}/" ]] || rm -rf --one-file-system "${old}"
  done
fi
rm -rf --one-file-system "${dir}"
mkdir -p "${dir}"
log="${dir}/debootstrap.log"
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
       "${suite}" "${dir}/root" "${mirror}" >"${log}" 2>&1; then
  tail -30 "${log}" >&2
  fail "debootstrap failed (log: ${log})"
fi
root="${dir}/root"
# Nothing in the image starts by itself that the roles are meant to start (sshd does: the
# test logs in with it), and no host keys or machine id are shared between the hosts booted
# from it (the test gives each host its own).
rm -f "${root}"/etc/ssh/ssh_host_* "${root}/etc/machine-id" "${root}/var/lib/dbus/machine-id"
: >"${root}/etc/machine-id"
for unit in prometheus prometheus-node-exporter unattended-upgrades; do
  rm -f "${root}/etc/systemd/system/multi-user.target.wants/${unit}.service"
done
chroot "${root}" apt-get clean
echo "root built in $(( $(date +%s) - start )) s" >>"${log}"
touch "${dir}/done"
echo "${root}"
