# bench/lib.sh - what the benchmark scripts share (sourced by run.sh and
# cost.sh): knobs, the cleanup of everything they start or change,
# preconditions, and helpers to start a daemon, run a storm and read
# figures. Sourcing it installs the EXIT trap.
# shellcheck shell=bash disable=SC2034 # knobs and helpers: not every script uses each
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=${1:-$REPO/build}
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "bench: no build dir '${1:-build}'" >&2; exit 1; }
ML=$BUILD/meshlens
TR=$BUILD/mltraffic
BP=$BUILD/bench_pipeline

PAIRS=${BENCH_PAIRS:-7}
STORM_N=${BENCH_STORM_CONNS:-20000}
HOLD_NS=${BENCH_HOLD:-10000 100000}
PARALLEL=${BENCH_PARALLEL:-2 4}
CALLGRIND=${BENCH_CALLGRIND:-1}
PERF=${BENCH_PERF:-1}
OUT=${BENCH_OUT:-$HERE/results.md}

# ---- state for cleanup ------------------------------------------------------
T=""
CGROOT=""
CGS=()           # cgroups we made
DPIDS=()         # daemons we started
TPIDS=()         # traffic processes we started in the background
PINS=()          # --pin-path dirs we handed out
UMOUNTS=()       # mounts we made (a private bpffs)
SYSCTL_OLD=""    # kernel.bpf_stats_enabled before we touched it
HOLD_FD=""       # write end of the fifo feeding a `hold` (closing it releases)
ODD=()           # odd things seen, for the report

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

stop_pid() { # pid: SIGTERM, wait up to 5 s, then SIGKILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cg_remove() {
	local cg=$1 p i
	[ -d "$cg" ] || return 0
	for i in $(seq 20); do
		while read -r p; do
			[ -n "$p" ] && echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null
		done <"$cg/cgroup.procs"
		rmdir "$cg" 2>/dev/null && return 0
		sleep 0.1
	done
	log "bench: could not remove $cg"
}

cleanup() {
	local p
	trap - EXIT INT TERM HUP
	[ -n "$HOLD_FD" ] && eval "exec $HOLD_FD>&-" 2>/dev/null
	for p in "${TPIDS[@]}"; do stop_pid "$p"; done
	for p in "${DPIDS[@]}"; do stop_pid "$p"; done
	if [ -n "$SYSCTL_OLD" ]; then
		sysctl -q -w kernel.bpf_stats_enabled="$SYSCTL_OLD" >/dev/null 2>&1 ||
			log "bench: could not restore kernel.bpf_stats_enabled=$SYSCTL_OLD"
	fi
	for p in "${CGS[@]}"; do cg_remove "$p"; done
	for p in "${PINS[@]}"; do [ -e "$p" ] && rm -rf "$p"; done
	for p in "${UMOUNTS[@]}"; do umount "$p" 2>/dev/null; done
	[ -n "$T" ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'log "bench: interrupted"; exit 130' INT TERM HUP

# ---- preconditions ------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (BPF)"
[ -r /sys/kernel/btf/vmlinux ] || die "no kernel BTF (/sys/kernel/btf/vmlinux)"
for b in "$ML" "$TR"; do [ -x "$b" ] || die "missing $b (run make bench)"; done
for c in bpftool jq curl taskset; do command -v "$c" >/dev/null || die "missing $c"; done
CGROOT=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
[ -n "$CGROOT" ] || die "no cgroup v2 mount in /proc/self/mountinfo"
T=$(mktemp -d /tmp/meshlens-bench.XXXXXX)
BPFFS=$(awk '$0 ~ / - bpf / { print $5; exit }' /proc/self/mountinfo)
BPFFS=${BPFFS:-/sys/fs/bpf}
START_TS=$(date +%s)

# ---- helpers ----------------------------------------------------------------------
CG_SEQ=0
# cg_new: a new private cgroup in $CG_NEW (not in a subshell: cleanup must
# know about it)
CG_NEW=""
cg_new() {
	CG_SEQ=$((CG_SEQ + 1))
	CG_NEW=$CGROOT/meshlens-bench-$$-$CG_SEQ
	mkdir "$CG_NEW" || die "mkdir $CG_NEW"
	CGS+=("$CG_NEW")
}

free_port() {
	local p used
	used=$(ss -Htln 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 12000))
		grep -qx "$p" <<<"$used" || { echo "$p"; return; }
	done
	echo 29112
}

# daemon_start CG [--pin-cpu CPU] [extra meshlens args...]
# Sets DPID DPORT DLOG DERR. Returns 0 when ready, 2 when the daemon refused
# the options with exit 2 (e.g. "not supported yet"), 1 otherwise.
DPID="" DPORT="" DLOG="" DERR=""
DAEMON_SEQ=0
daemon_start() {
	local cg=$1 pin="" rc pin_path
	shift
	if [ "${1:-}" = --pin-cpu ]; then pin=$2; shift 2; fi
	DAEMON_SEQ=$((DAEMON_SEQ + 1))
	DPORT=$(free_port)
	DLOG=$T/access-$DAEMON_SEQ.log
	DERR=$T/daemon-$DAEMON_SEQ.err
	pin_path=$BPFFS/meshlens-bench-$$-$DAEMON_SEQ
	PINS+=("$pin_path")
	if [ -n "$pin" ]; then
		taskset -c "$pin" "$ML" -g "$cg" -o "$DLOG" -m "127.0.0.1:$DPORT" \
			--pin-path "$pin_path" "$@" 2>"$DERR" &
	else
		"$ML" -g "$cg" -o "$DLOG" -m "127.0.0.1:$DPORT" --pin-path "$pin_path" "$@" 2>"$DERR" &
	fi
	DPID=$!
	DPIDS+=("$DPID")
	for _ in $(seq 200); do
		grep -q ready "$DERR" 2>/dev/null && return 0
		if ! kill -0 "$DPID" 2>/dev/null; then
			wait "$DPID"
			rc=$?
			DPID=""
			[ "$rc" = 2 ] && return 2
			log "bench: daemon exited $rc: $(cat "$DERR")"
			return 1
		fi
		sleep 0.05
	done
	log "bench: daemon not ready after 10 s: $(cat "$DERR")"
	return 1
}

# daemon_stop: SIGTERM, wait; notes an abnormal exit once.
SIGTERM_NOTED=""
daemon_stop() {
	local rc i
	[ -n "$DPID" ] || return 0
	kill -TERM "$DPID" 2>/dev/null
	for i in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID"
	wait "$DPID"
	rc=$?
	if [ "$rc" != 0 ] && [ -z "$SIGTERM_NOTED" ]; then
		SIGTERM_NOTED=1
		if [ "$rc" = 143 ]; then
			ODD+=("The daemon dies of SIGTERM (exit status 143, no \"exiting on signal\" line, no final drain) when the metrics endpoint is on: the endpoint's threads start before the loop blocks SIGTERM/SIGINT/SIGHUP, so the kernel may deliver the signal to one of them. Records queued at that moment are lost (with -m off it exits 0).")
		else
			ODD+=("The daemon exited with status $rc on SIGTERM (expected 0).")
		fi
	fi
	DPID=""
}

# metrics: one scrape; retried while the endpoint answers 503 (the loop
# did not render within its wait) or times out; each failure is logged.
metrics() {
	local out
	for _ in $(seq 8); do
		out=$(curl -sf --max-time 15 "http://127.0.0.1:$DPORT/metrics") && { printf '%s\n' "$out"; return 0; }
		echo "$(date +%s) scrape failed" >>"$T/scrape-failures"
		sleep 0.5
	done
	return 1
}
# metric TEXT NAME_WITH_LABELS -> value (0 if absent)
metric() { awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' <<<"$1"; }

# storm CG N [mltraffic storm args] -> conns_per_sec (fails on errors)
storm() {
	local cg=$1 n=$2 out
	shift 2
	out=$("$TR" --cgroup "$cg" --quiet --max-seconds 300 storm 127.0.0.1 "$n" "$@") ||
		{ log "bench: storm failed: $out"; return 1; }
	jq -r .conns_per_sec <<<"$out"
}

spread() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf("%s-%s", lo, hi); else print "n/a" }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (!NR) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "" || v == "nan") print "n/a"; else printf(f, v) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf("%.3f", a / b); else print "nan" }'; }

# CPU time of every thread of a process so far, in ns (schedstat)
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf("%.0f", s) }'; }

# our daemon's BPF object ids, from its descriptors: prog_id / map_id
fd_ids() { # pid key
	local f
	for f in /proc/"$1"/fdinfo/*; do
		awk -v k="$2:" '$1 == k { print $2 }' "$f" 2>/dev/null
	done | sort -un
}

