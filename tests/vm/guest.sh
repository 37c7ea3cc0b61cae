#!/bin/bash
# Stage 2 of a test VM: PID 1 in the overlay root (host's root read-only
# below, tmpfs above) that tests/vm/init switched to.
#   guest.sh JOBDIR
# JOBDIR (written by tests/vm/run.sh, read through the host's root) holds
# conf (shares, hostname, marker, cgroup layout), env (exported variables) and cmd (the
# command, a bash script). Mounts what a booted host has, runs cmd, prints
# "MESHLENS-VM-STATUS NONCE RC" on the console and powers off.
# Not -e: PID 1 must reach the marker and the power-off whatever fails.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
bb=/bin/busybox
job=${1:-}

off() {
	sync
	$bb poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}
fail() {
	echo "vm-guest: FAILED: $*"
	off
}
mnt() { # mnt TYPE SOURCE TARGET [OPTIONS]
	$bb mkdir -p "$3"
	$bb mount -t "$1" ${4:+-o "$4"} "$2" "$3" || echo "vm-guest: mount -t $1 $3 failed"
}

# the job lives in the host's /tmp, which a tmpfs hides below: copy it first
mnt tmpfs tmpfs /run mode=0755,nosuid,nodev
$bb cp -r "$job" /run/vmjob || fail "no job directory '$job'"
# shellcheck source=/dev/null
. /run/vmjob/conf # VM_NONCE VM_HOSTNAME VM_CWD VM_CGROUP VM_SHARES=(tag:path ...)

# what udev would add to devtmpfs
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
ln -sfn /proc/kcore /dev/core
mnt devpts devpts /dev/pts gid=5,mode=620,ptmxmode=666
mnt tmpfs tmpfs /dev/shm mode=1777,nosuid,nodev
mnt tmpfs tmpfs /tmp mode=1777,nosuid,nodev
mnt bpf bpf /sys/fs/bpf mode=0700
if [ "${VM_CGROUP:-v2}" = hybrid ]; then
	# systemd's hybrid layout: v1 hierarchies, an empty v2 at unified/
	mnt tmpfs tmpfs /sys/fs/cgroup mode=0755,nosuid,nodev,noexec
	for c in cpu,cpuacct cpuset memory devices freezer blkio pids; do
		mnt cgroup cgroup "/sys/fs/cgroup/$c" "$c"
	done
	ln -s cpu,cpuacct /sys/fs/cgroup/cpu
	ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
	mnt cgroup2 cgroup2 /sys/fs/cgroup/unified nsdelegate
else
	mnt cgroup2 cgroup2 /sys/fs/cgroup nsdelegate
fi
mnt tracefs tracefs /sys/kernel/tracing
mnt debugfs debugfs /sys/kernel/debug
mkdir -p /lib/modules
for s in "${VM_SHARES[@]}"; do
	tag=${s%%:*} path=${s#*:} opt=trans=virtio,version=9p2000.L,msize=262144
	[ "$tag" = mods ] && opt=$opt,cache=loose,ro
	mnt 9p "$tag" "$path" "$opt"
done

$bb hostname "$VM_HOSTNAME"
echo "127.0.1.1 $VM_HOSTNAME" >>/etc/hosts
ip link set lo up || echo "vm-guest: lo not up"
echo
echo "vm-guest: kernel $(uname -r), $(nproc) CPUs, up $(cut -d' ' -f1 /proc/uptime) s"

(
	set +u
	# shellcheck source=/dev/null
	. /run/vmjob/env
	cd "$VM_CWD" || exit 125
	exec bash /run/vmjob/cmd </dev/null
)
rc=$?

echo 1 >/proc/sys/kernel/printk # no kernel message in the marker's line
echo "vm-guest: command exited $rc, up $(cut -d' ' -f1 /proc/uptime) s"
echo "MESHLENS-VM-STATUS $VM_NONCE $rc"
off
