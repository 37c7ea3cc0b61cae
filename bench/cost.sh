#!/usr/bin/env bash
# bench/cost.sh [BUILD_DIR] - in-kernel cost per connection (bpf_stats),
# meshlens side by side with what it is measured against, in one run:
#
#   empty     an empty sockops program (what attaching anything costs)
#   floor     the floor of the design (bench/bpf/floor.bpf.c): socket
#             storage created at connect/accept, state callback, storage
#             deleted at close, nothing recorded
#   meshlens  a daemon with default options; meshlens-drops with --drops
#   gone      meshlens's programs with no reader (daemon stopped, links
#             pinned): what the observed sockets pay while it is away
#   tcplife   the peer a user would pick instead (libbpf-tools' tcplife,
#             node-wide, printing a line per connection)
#   noopen, norec  ablations: meshlens built without its open records, and
#             without any record (ML_BENCH_NO_OPEN / ML_BENCH_NO_RECORDS in
#             bpf/conn.h; $BUILD/bench/{noopen,norec}/meshlens): what the
#             records cost, and what the bookkeeping alone costs
#
# Each round runs every kind once on a fresh cgroup, in a rotated order
# (drift cancels out); figures are medians over rounds. Run by run.sh
# (section 2) or alone. Writes markdown to BENCH_COST_MD and shell
# assignments (COST_*) to BENCH_COST_VARS; both default to stdout/none.
#
# Knobs: BENCH_COST_ROUNDS [5], BENCH_STORM_CONNS [20000],
#        BENCH_COST_DAEMON_ARGS [""] (more meshlens options),
#        BENCH_COST_KINDS ["empty floor meshlens meshlens-drops gone tcplife"]
set -uo pipefail
# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

ROUNDS=${BENCH_COST_ROUNDS:-5}
KINDS=${BENCH_COST_KINDS:-empty floor meshlens meshlens-drops gone tcplife noopen norec}
MD=${BENCH_COST_MD:-/dev/stdout}
VARS=${BENCH_COST_VARS:-/dev/null}
BPFOBJ=$BUILD/bench
# extra daemon options for every meshlens kind (experiments: -c FILE, ...)
read -r -a DARGS <<<"${BENCH_COST_DAEMON_ARGS:-}"
command -v tcplife >/dev/null || KINDS=${KINDS//tcplife/}
# tcplife attaches a classic tracepoint: tracefs, mounted for it if missing
if [[ $KINDS == *tcplife* ]] && [ ! -d /sys/kernel/tracing/events ]; then
	mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs for tcplife"
	UMOUNTS+=(/sys/kernel/tracing)
fi
for k in empty floor; do
	[ -f "$BPFOBJ/$k.bpf.o" ] || die "missing $BPFOBJ/$k.bpf.o (run make bench)"
done
for k in noopen norec; do
	[[ " $KINDS " != *" $k "* ]] || [ -x "$BPFOBJ/$k/meshlens" ] || die "missing $BPFOBJ/$k/meshlens (run make bench)"
done

SYSCTL_OLD=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -q -w kernel.bpf_stats_enabled=1 >/dev/null || die "cannot set kernel.bpf_stats_enabled"
# bpftool pins the floor programs here (a private bpffs, unmounted on exit)
PRIV_BPFFS=$T/bpffs
mkdir -p "$PRIV_BPFFS"
mount -t bpf bpf "$PRIV_BPFFS" || die "cannot mount a private bpffs"
UMOUNTS+=("$PRIV_BPFFS")

# prog_snap IDS -> [{id,name,t,c}] (run time and count so far)
prog_snap() {
	local id
	for id in $1; do bpftool prog show id "$id" -j 2>/dev/null; done |
		jq -s -c 'map({id, name, t: (.run_time_ns // 0), c: (.run_cnt // 0)})'
}
# prog_delta SNAP0 SNAP1 -> per program: name runs ns/run runs/conn ns/conn (TSV)
prog_delta() {
	jq -n -r --argjson a "$1" --argjson b "$2" --argjson n "$STORM_N" '
		[ $b[] as $p | ($a[] | select(.id == $p.id)) as $q
		  | {name: $p.name, t: ($p.t - $q.t), c: ($p.c - $q.c)} ]
		| sort_by(-.t) | .[]
		| [.name, .c, (if .c > 0 then (.t / .c | . * 10 | round / 10) else 0 end),
		   (.c / $n | . * 100 | round / 100), (.t / $n | . * 10 | round / 10)] | @tsv'
}
prog_total() { prog_delta "$1" "$2" | awk '{ s += $5 } END { printf("%.1f", s) }'; }
link_progs() { # pin dir -> prog ids of its pinned links
	local l
	for l in "$1"/link-*; do bpftool link show pinned "$l" -j 2>/dev/null | jq -r .prog_id; done
}

# measure KIND CG IDS: one storm, COST[KIND] += total, TABLE[KIND] = table
declare -A COST TABLE RATE
measure() {
	local kind=$1 cg=$2 ids=$3 s0 s1 r
	s0=$(prog_snap "$ids")
	r=$(storm "$cg" "$STORM_N") || die "storm ($kind) failed"
	s1=$(prog_snap "$ids")
	COST[$kind]+=" $(prog_total "$s0" "$s1")"
	RATE[$kind]+=" $r"
	TABLE[$kind]=$(prog_delta "$s0" "$s1")
}

run_kind() {
	local kind=$1 cg pin pid ids extra
	cg_new; cg=$CG_NEW
	case $kind in
	empty | floor)
		pin=$PRIV_BPFFS/$kind
		bpftool prog load "$BPFOBJ/$kind.bpf.o" "$pin" type sockops || die "bpftool prog load $kind"
		bpftool cgroup attach "$cg" sock_ops pinned "$pin" || die "bpftool cgroup attach $kind"
		measure "$kind" "$cg" "$(bpftool prog show pinned "$pin" -j | jq -r .id)"
		bpftool cgroup detach "$cg" sock_ops pinned "$pin"
		rm -f "$pin"
		;;
	meshlens | meshlens-drops)
		extra=()
		[ "$kind" = meshlens-drops ] && extra=(--drops)
		daemon_start "$cg" "${DARGS[@]}" "${extra[@]}" || die "daemon ($kind) did not start"
		measure "$kind" "$cg" "$(fd_ids "$DPID" prog_id)"
		daemon_stop
		;;
	noopen | norec)
		ML=$BPFOBJ/$kind/meshlens daemon_start "$cg" "${DARGS[@]}" || die "daemon ($kind) did not start"
		measure "$kind" "$cg" "$(fd_ids "$DPID" prog_id)"
		daemon_stop
		;;
	gone)
		daemon_start "$cg" "${DARGS[@]}" || die "daemon (gone) did not start"
		pin=${PINS[-1]}
		daemon_stop # SIGTERM leaves the programs attached through the pinned links
		measure gone "$cg" "$(link_progs "$pin")"
		"$ML" --detach --pin-path "$pin" >/dev/null 2>&1 || log "bench: --detach $pin failed"
		;;
	tcplife)
		tcplife >"$T/tcplife.out" 2>&1 &
		pid=$!
		TPIDS+=("$pid")
		for _ in $(seq 100); do [ -s "$T/tcplife.out" ] && break; sleep 0.1; done
		ids=$(fd_ids "$pid" prog_id)
		[ -n "$ids" ] || die "tcplife did not load: $(head -3 "$T/tcplife.out")"
		measure tcplife "$cg" "$ids"
		stop_pid "$pid"
		TCPLIFE_LINES=$(($(wc -l <"$T/tcplife.out") - 1))
		;;
	esac
	cg_remove "$cg"
}

log "== BPF cost per connection: $ROUNDS rounds of $STORM_N connections; kinds: $KINDS"
read -r -a kinds <<<"$KINDS"
for r in $(seq "$ROUNDS"); do
	# rotate the order by one each round
	order=("${kinds[@]:$(((r - 1) % ${#kinds[@]}))}" "${kinds[@]:0:$(((r - 1) % ${#kinds[@]}))}")
	for k in "${order[@]}"; do run_kind "$k"; done
	line="   round $r:"
	for k in "${kinds[@]}"; do line+=" $k $(awk '{ print $NF }' <<<"${COST[$k]}")"; done
	log "$line ns/conn"
done
sysctl -q -w kernel.bpf_stats_enabled="$SYSCTL_OLD" >/dev/null && SYSCTL_OLD=""

# per-round ratios against the floor (same round)
ratio_of() { # kind base -> median of per-round ratios
	paste -d' ' <(tr ' ' '\n' <<<"${COST[$1]}" | grep -v '^$') <(tr ' ' '\n' <<<"${COST[$2]}" | grep -v '^$') |
		awk '$2 > 0 { print $1 / $2 }' | median
}
{
	echo "| | ns per connection (median) | range | vs floor | conn/s (stats on) |"
	echo "|---|---|---|---|---|"
	for k in "${kinds[@]}"; do
		printf '| %s | %s | %s | %s | %s |\n' "$k" "$(median <<<"${COST[$k]}")" "$(spread "${COST[$k]}")" \
			"$(fmt "$(ratio_of "$k" floor)" %.2f)" "$(median <<<"${RATE[$k]}" | xargs printf %.0f)"
	done
	for k in meshlens meshlens-drops gone; do
		[ -n "${TABLE[$k]:-}" ] || continue
		echo
		echo "$k, last round, per program:"
		echo
		echo "| program | runs | ns per run | runs per conn | ns per conn |"
		echo "|---|---|---|---|---|"
		awk -F'\t' '{ printf("| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5) }' <<<"${TABLE[$k]}"
	done
} >"$MD"
{
	for k in "${kinds[@]}"; do
		v=${k//-/_}
		echo "COST_${v^^}=$(median <<<"${COST[$k]}")"
		echo "COST_${v^^}_VS_FLOOR=$(ratio_of "$k" floor)"
	done
	echo "COST_GONE_VS_PRESENT=$(ratio_of gone meshlens)"
	echo "COST_TCPLIFE_LINES=${TCPLIFE_LINES:-}"
} >"$VARS"
