#!/usr/bin/env bash
# Boot a kernel of the matrix in qemu (TCG) and run a command inside it.
#   tests/vm/run.sh KERNEL CMD...
# KERNEL: 5.10, 6.1 or 6.12 (fetched by tests/vm/kernels.sh when missing),
# or a directory holding an unpacked kernel package (boot/vmlinuz-*,
# lib/modules/VERSION). CMD... is joined with spaces and run by bash in the
# guest, as ssh does, as root in the project directory.
# The guest's root is the host's, read-only over 9p, under a tmpfs overlay;
# the project directory (and each of $VM_RW) is shared writable at the same
# path; the kernel's modules are at /lib/modules. No network device.
# Exit status: CMD's, 124 when VM_TIMEOUT ran out, 125 when the VM ended
# without reporting one. The console goes to stdout and to $VM_LOG.
# Env: VM_CACHE, VM_TIMEOUT (s, default 3600), VM_MEM (MiB, default 2048),
# VM_SMP (default 2), VM_LOG, VM_RW (more writable shares, space separated),
# VM_ENV (more variables to pass), VM_CMDLINE (more kernel parameters),
# VM_QUIET=1 (console to $VM_LOG only), VM_CGROUP=v2 (cgroup2 at
# /sys/fs/cgroup, the default) or hybrid (v1 controllers there, cgroup2 at
# /sys/fs/cgroup/unified, as systemd's hybrid mode and these machines have). Passed to the guest: CI, TERM and
# every MESHLENS_* and BATS_* variable.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

if [ $# -lt 2 ]; then
	sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
fi
VM_TIMEOUT=${VM_TIMEOUT:-3600}
VM_MEM=${VM_MEM:-2048}
VM_SMP=${VM_SMP:-2}
case ${VM_CGROUP:=v2} in v2 | hybrid) ;; *) vm_die "VM_CGROUP is v2 or hybrid, not '$VM_CGROUP'" ;; esac
for t in qemu-system-x86_64 busybox cpio modprobe; do
	command -v "$t" >/dev/null || vm_die "$t missing: run deploy/install-deps.sh"
done
busybox=$(command -v busybox)
ldd "$busybox" >/dev/null 2>&1 && vm_die "$busybox is not static: install busybox-static"

kdir=$(vm_kernel_dir "$1")
shift
ver=$(vm_kernel_version "$kdir") || vm_die "no boot/vmlinuz-* in $kdir"
mkdir -p "$VM_CACHE/logs"
VM_LOG=${VM_LOG:-$VM_CACHE/logs/$ver.log}
mkdir -p "$(dirname "$VM_LOG")"

tmp="" qpid="" tpid=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	set +e
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$qpid" 2>/dev/null
	fi
	[ -z "$qpid" ] || wait "$qpid" 2>/dev/null
	[ -z "$tpid" ] || wait "$tpid" 2>/dev/null
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
tmp=$(mktemp -d /tmp/meshlens-vm.XXXXXX)
chmod 755 "$tmp"

# --- initramfs: busybox, the modules for virtio-9p and overlay, tests/vm/init
ird=$tmp/initramfs
mkdir -p "$ird/bin" "$ird/dev" "$ird/modules"
cp "$busybox" "$ird/bin/busybox"
cp "$VM_ROOT/tests/vm/init" "$ird/init"
chmod 755 "$ird/init"
[ "$(id -u)" != 0 ] || mknod -m 600 "$ird/dev/console" c 5 1
n=0
for m in virtio_pci 9pnet_virtio 9p overlay virtio_rng; do
	# modules.dep gives the order (9p needs netfs and fscache, when modules)
	modprobe -d "$kdir" -S "$ver" --show-depends "$m" ||
		vm_die "kernel $ver has no module $m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tmp/mods"
while read -r ko; do
	n=$((n + 1))
	f=$(printf '%02d-%s' "$n" "${ko##*/}")
	case $ko in
	*.xz) xz -dc "$ko" >"$ird/modules/${f%.xz}" && f=${f%.xz} ;;
	*.zst) zstd -qdc "$ko" >"$ird/modules/${f%.zst}" && f=${f%.zst} ;;
	*.gz) gzip -dc "$ko" >"$ird/modules/${f%.gz}" && f=${f%.gz} ;;
	*) cp "$ko" "$ird/modules/$f" ;;
	esac
	echo "$f" >>"$ird/modules/order"
done <"$tmp/mods"
(cd "$ird" && find . | cpio -o -H newc --quiet) | gzip -1 >"$tmp/initrd.gz"

# --- the job: conf for stage 2, the environment, the command
share=$VM_ROOT
nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
shares=("proj:$share" "mods:/lib/modules")
# shellcheck disable=SC2054  # commas inside qemu option values
fsdev=(
	-fsdev "local,id=root,path=/,readonly=on,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=root,mount_tag=root
	-fsdev "local,id=proj,path=$share,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=proj,mount_tag=proj
	-fsdev "local,id=mods,path=$kdir/lib/modules,readonly=on,security_model=none,multidevs=remap"
	-device virtio-9p-pci,fsdev=mods,mount_tag=mods
)
i=0
for d in ${VM_RW:-}; do
	d=$(realpath -m "$d")
	mkdir -p "$d"
	fsdev+=(-fsdev "local,id=rw$i,path=$d,security_model=none,multidevs=remap"
		-device "virtio-9p-pci,fsdev=rw$i,mount_tag=rw$i")
	shares+=("rw$i:$d")
	i=$((i + 1))
done
for s in "${shares[@]}" "x:$kdir" "x:$tmp"; do
	case $s in *,* | *' '*) vm_die "a shared path holds a comma or a space: ${s#*:}" ;; esac
done
{
	printf 'VM_NONCE=%s\nVM_HOSTNAME=meshlens-vm\nVM_CWD=%q\nVM_CGROUP=%q\nVM_SHARES=(' \
		"$nonce" "$share" "$VM_CGROUP"
	printf ' %q' "${shares[@]}"
	echo ' )'
} >"$tmp/conf"
{
	for v in CI TERM ${VM_ENV:-} $(compgen -v | grep -E '^(MESHLENS|BATS)_' || true); do
		[ -n "${!v+set}" ] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	true
} >"$tmp/env"
printf '%s\n' "$*" >"$tmp/cmd"

# --- boot
append="console=ttyS0 rdinit=/init panic=-1 loglevel=4 mitigations=off"
append="$append ml.job=$tmp ml.stage2=$VM_ROOT/tests/vm/guest.sh ${VM_CMDLINE:-}"
vm_log "booting $ver (timeout ${VM_TIMEOUT}s, log $VM_LOG): $*"
start=$(date +%s)
: >"$VM_LOG"
qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP" \
	-nographic -no-reboot -nic none -device virtio-rng-pci \
	-kernel "$kdir/boot/vmlinuz-$ver" -initrd "$tmp/initrd.gz" -append "$append" \
	"${fsdev[@]}" </dev/null >>"$VM_LOG" 2>&1 &
qpid=$!
if [ "${VM_QUIET:-0}" != 1 ]; then
	# without carriage returns and the firmware's terminal resets
	tail -n +1 -s 0.5 -f --pid="$qpid" "$VM_LOG" |
		sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' &
	tpid=$!
fi
timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
	if [ $(($(date +%s) - start)) -ge "$VM_TIMEOUT" ]; then
		timed_out=1
		kill "$qpid" 2>/dev/null || true
		break
	fi
	sleep 1
done
wait "$qpid" 2>/dev/null || true
qpid=""
[ -z "$tpid" ] || wait "$tpid" 2>/dev/null || true
tpid=""
secs=$(($(date +%s) - start))

rc=$(tr -d '\r' <"$VM_LOG" | sed -n "s/^MESHLENS-VM-STATUS $nonce \([0-9]\{1,3\}\)\$/\1/p" | tail -1)
boot=$(tr -d '\r' <"$VM_LOG" | sed -n 's/^vm-guest: kernel .*, up \([0-9.]*\) s$/\1/p' | head -1)
if [ -n "$rc" ]; then
	vm_log "$ver: exit status $rc after ${secs}s (booted to the command in ${boot:-?}s)"
	exit "$rc"
elif [ "$timed_out" = 1 ]; then
	vm_log "$ver: FAILED: no result within VM_TIMEOUT=${VM_TIMEOUT}s; VM killed (log $VM_LOG)"
	exit 124
fi
vm_log "$ver: FAILED: the VM ended after ${secs}s without reporting an exit status (boot failure or kernel panic? log $VM_LOG)"
exit 125
