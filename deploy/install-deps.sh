#!/usr/bin/env bash
# Install every Debian package meshlens needs to build, run and test.
# Idempotent: packages already present are not touched, and apt is only
# consulted when something is missing.
set -euo pipefail

BUILD_PKGS="make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
  libcjson-dev libnl-3-dev libnl-route-3-dev libmicrohttpd-dev libcap-dev pkg-config"
TEST_PKGS="libclang-rt-14-dev libcmocka-dev bats iproute2 iptables procps curl jq gzip prometheus
  yamllint shellcheck systemd strace logrotate
  qemu-system-x86 busybox-static kmod cpio xz-utils zstd"

# make bench: the peer it is compared with (tcplife) and the profiler
BENCH_PKGS="libbpf-tools linux-perf"

want="$BUILD_PKGS"
case "${1:-}" in
--build-only) ;;
--bench) want="$want $TEST_PKGS $BENCH_PKGS" ;;
*) want="$want $TEST_PKGS" ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
