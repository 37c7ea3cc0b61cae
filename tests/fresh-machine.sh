#!/usr/bin/env bash
# Proves that `make test` (or any make target) works the first time on a clean
# Debian 12: a debootstrap minbase root with nothing but `make` added, the
# committed tree copied in (as a fresh clone has it), the host's kernel, /sys
# (cgroup v2, bpffs) and /dev bound in, and the target run inside with CI=true.
#   tests/fresh-machine.sh [TARGET]        (default: test)
# Env: FRESH_ROOT (default /var/tmp/meshlens-fresh: made with debootstrap when
# missing, removed with FRESH_CLEAN=1 afterwards), FRESH_MIRROR (default: the
# host's Debian mirror).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-test}
root=${FRESH_ROOT:-/var/tmp/meshlens-fresh}
mirror=${FRESH_MIRROR:-$(awk '/^URIs:/ && /debian$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null)}
mirror=${mirror:-$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)}
[ "$(id -u)" = 0 ] || { echo "fresh-machine: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
[ -n "$mirror" ] || { echo "fresh-machine: no Debian mirror found; set FRESH_MIRROR" >&2; exit 1; }
command -v debootstrap >/dev/null ||
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
	echo "fresh-machine: debootstrap --variant=minbase bookworm $root ($mirror)"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
fi

mounted=()
cleanup() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
	[ "${FRESH_CLEAN:-}" != 1 ] || rm -rf "$root"
}
trap cleanup EXIT
bind() { # bind SRC DST [rbind]: mount SRC at DST inside the root
	mkdir -p "$root$2"
	mount "--${3:-bind}" "$1" "$root$2"
	[ "${3:-}" != rbind ] || mount --make-rslave "$root$2"
	mounted+=("$root$2")
}
# the root a mount point of its own, as on a booted machine: `ip netns exec`
# runs "mount --make-rslave /", which fails on a plain directory
mount --bind "$root" "$root" && mounted+=("$root")
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
bind /sys /sys rbind
bind /dev /dev rbind
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# the committed tree only: a clone, as CI's (file modes too: git archive
# would make them 0664)
src=/src/meshlens
rm -rf "${root:?}$src"
mkdir -p "$root/src"
git clone -q --no-hardlinks "file://$PWD" "$root$src"

echo "fresh-machine: apt-get install make, then make $target, in $root"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true \
	DEBIAN_FRONTEND=noninteractive /bin/bash -c "
	set -e
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends make >/dev/null
	cd $src && make $target"
