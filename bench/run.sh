#!/usr/bin/env bash
# meshlens benchmarks (`make bench`): connection-rate overhead, in-kernel
# BPF cost, user-space throughput, memory, loss. Prints a table and writes
# bench/results.md. Figures only: nothing here gates CI.
#
#   bench/run.sh [BUILD_DIR]
#
# Environment knobs (defaults in brackets):
#   BENCH_PAIRS [7]           alternating off/on pairs per overhead series
#   BENCH_STORM_CONNS [20000] connections per storm run
#   BENCH_HOLD ["10000 100000"] live-connection counts for the memory runs
#   BENCH_PARALLEL ["2 4"]    parallel storms for the loss runs
#   BENCH_CALLGRIND [1]       0 skips the callgrind run
#   BENCH_PERF [1]            0 skips the perf profile
#   BENCH_OUT [bench/results.md]
#   BENCH_COMMIT              commit text for the report (default: git HEAD of the tree)
#
# Needs root, BPF, cgroup v2, bpftool, jq, curl. Every daemon run gets its
# own private cgroup; daemons, traffic, cgroups, temp files and the
# kernel.bpf_stats_enabled sysctl are cleaned up on exit, error or signal.
# Traffic is loopback only (127.0.0.1).
set -uo pipefail

# shellcheck source=bench/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
[ -x "$BP" ] || die "missing $BP (run make bench)"

# ---- 1. connection-rate overhead --------------------------------------------------
log "== 1. connection rate: mltraffic storm, $PAIRS alternating pairs of $STORM_N connections"
DROPS=unknown
declare -A RATES
for pin in unpinned pinned; do
	for kind in off on drops; do RATES[$pin-$kind]=""; done
	RATES[$pin-ratio]=""
	RATES[$pin-ratio-drops]=""
	RATES[$pin-cpu]=""
done
# run_on PIN KIND: one storm on a fresh daemon (KIND on or drops); sets RUN_RATE
# (empty when --drops is not there) and RUN_CPU (daemon CPU us per conn)
run_on() {
	local pin=$1 kind=$2 cg rc c0 c1 extra=()
	RUN_RATE="" RUN_CPU=""
	[ "$kind" = drops ] && extra=(--drops)
	cg_new; cg=$CG_NEW
	daemon_start "$cg" "${dargs[@]}" "${extra[@]}"
	rc=$?
	if [ "$rc" = 0 ]; then
		[ "$kind" = drops ] && DROPS=yes
		c0=$(cpu_ns "$DPID")
		RUN_RATE=$(storm "$cg" "$STORM_N" "${sargs[@]}") || die "storm with meshlens $kind failed"
		c1=$(cpu_ns "$DPID")
		RUN_CPU=$(awk -v t=$((c1 - c0)) -v n="$STORM_N" 'BEGIN { printf("%.2f", t / 1e3 / n) }')
		daemon_stop
	elif [ "$kind" = on ]; then
		die "daemon did not start"
	elif [ "$rc" = 2 ] && grep -q 'not supported' "$DERR"; then
		DROPS=n/a
		DROPS_WHY=$(head -1 "$DERR")
	else
		DROPS=failed
		DROPS_WHY=$(grep -v '^$' "$DERR" | tail -1)
		ODD+=("meshlens --drops did not start (exit $rc): $DROPS_WHY")
	fi
	cg_remove "$cg"
}
run_off() {
	local cg
	cg_new; cg=$CG_NEW
	RUN_RATE=$(storm "$cg" "$STORM_N" "${sargs[@]}") || die "storm without meshlens failed"
	cg_remove "$cg"
}
for i in $(seq "$PAIRS"); do
	for pin in unpinned pinned; do
		sargs=() dargs=()
		if [ "$pin" = pinned ]; then sargs=(--cpu "0,0"); dargs=(--pin-cpu 1); fi
		# alternate the order, so that drift over the run cancels out
		kinds=(off on drops)
		[ $((i % 2)) = 0 ] && kinds=(drops on off)
		off="" on="" dr=""
		for kind in "${kinds[@]}"; do
			case $kind in
			off) run_off; off=$RUN_RATE ;;
			on) run_on "$pin" on; on=$RUN_RATE; RATES[$pin-cpu]+=" $RUN_CPU" ;;
			drops)
				if [ "$DROPS" = unknown ] || [ "$DROPS" = yes ]; then
					run_on "$pin" drops
					dr=$RUN_RATE
				fi ;;
			esac
		done
		RATES[$pin-off]+=" $off"
		RATES[$pin-on]+=" $on"
		RATES[$pin-ratio]+=" $(ratio "$on" "$off")"
		if [ -n "$dr" ]; then
			RATES[$pin-drops]+=" $dr"
			RATES[$pin-ratio-drops]+=" $(ratio "$dr" "$off")"
		fi
		log "   pair $i $pin (${kinds[*]}): off $off  on $on  drops ${dr:-n/a} conn/s"
	done
done
declare -A MED
for pin in unpinned pinned; do
	for k in off on drops ratio ratio-drops cpu; do
		MED[$pin-$k]=$(median <<<"${RATES[$pin-$k]}")
	done
done

# ---- 2. in-kernel cost ------------------------------------------------------------
# bench/cost.sh: meshlens against the floor, an empty program, no reader, the
# peer tool and the ablations, in one run (its own cleanup and bpf_stats)
log "== 2. BPF run time per connection (bench/cost.sh)"
BENCH_COST_MD=$T/cost.md BENCH_COST_VARS=$T/cost.vars "$HERE/cost.sh" "$BUILD" ||
	die "bench/cost.sh failed"
# shellcheck source=/dev/null
. "$T/cost.vars"

# ---- 2b. where the in-kernel time goes ----------------------------------------------
PERF_SUMMARY="" PERF_RATE=""
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
	log "== 2b. perf profile (cpu-clock, all CPUs) of a pinned storm with meshlens"
	cg_new; cg=$CG_NEW
	daemon_start "$cg" --pin-cpu 1 || die "daemon did not start"
	# sh execs the storm: its pid is the storm's, for perf_summary.awk
	# shellcheck disable=SC2016 # $$ and $1 are the inner sh's
	if perf record -q -a -g -o "$T/perf.data" -- sh -c 'echo $$ >"$1"; shift; exec "$@"' _ \
		"$T/storm.pid" "$TR" --cgroup "$cg" --quiet --max-seconds 300 \
		storm 127.0.0.1 "$STORM_N" --cpu 0,0 >"$T/perf-storm.json" 2>"$T/perf.err"; then
		PERF_RATE=$(jq -r .conns_per_sec "$T/perf-storm.json" 2>/dev/null)
		PERF_SUMMARY=$(perf script -i "$T/perf.data" --show-task-events -F comm,tid,period,ip,sym 2>/dev/null |
			awk -v conns="$STORM_N" -v top="$(cat "$T/storm.pid")" -v daemon="$DPID" \
				-f "$HERE/perf_summary.awk" | sort -rn)
	else
		log "bench: perf record failed: $(tail -2 "$T/perf.err")"
	fi
	rm -f "$T/perf.data"
	daemon_stop
	cg_remove "$cg"
fi

# ---- 3. user-space throughput ------------------------------------------------------
log "== 3. user-space pipeline: bench_pipeline on one core"
# the same with workload identity: names in every line, the workload families
cat >"$T/bench-md.json" <<'EOF'
{"workloads": [
  {"ips": ["10.244.1.0/24"], "workload": "productpage-v1", "namespace": "bookinfo", "service": "productpage"},
  {"ips": ["10.244.2.0/24"], "workload": "reviews-v2", "namespace": "bookinfo", "service": "reviews"},
  {"ips": ["10.244.9.0/24"], "workload": "ratings-v1", "namespace": "bookinfo", "service": "ratings"},
  {"ips": ["fd00:0:0:f4::/64"], "workload": "details-v1", "namespace": "bookinfo", "service": "details"}
]}
EOF
# the storms' access logs above leave hundreds of MB dirty: written back
# first, not while the pipeline is measured (writeback beside a run cost it
# ~12 %); plain and named runs alternate, so both meet the same machine
sync
BP_RUNS=() BP_MD_RUNS=()
for i in 1 2 3; do
	BP_RUNS+=("$(taskset -c 1 "$BP" --records 1000000 --out "$T/pipeline.log")") || die "bench_pipeline failed"
	log "   ${BP_RUNS[-1]}"
	BP_MD_RUNS+=("$(taskset -c 1 "$BP" --records 1000000 --out "$T/pipeline.log" --metadata "$T/bench-md.json")") ||
		die "bench_pipeline --metadata failed"
	log "   ${BP_MD_RUNS[-1]}"
done
bp_med() { printf '%s\n' "${BP_RUNS[@]}" | jq -r ".$1" | median; }
bp_md_med() { printf '%s\n' "${BP_MD_RUNS[@]}" | jq -r ".$1" | median; }
BP_RATE=$(bp_med records_per_sec)
BP_RATE_CPU=$(bp_med records_per_sec_cpu)
BP_NS=$(bp_med ns_per_record)
BP_BYTES=$(bp_med bytes_per_line)
BP_RECORDS=$(jq -r .records <<<"${BP_RUNS[0]}")
BP_MD_RATE=$(bp_md_med records_per_sec)
BP_MD_RATE_CPU=$(bp_md_med records_per_sec_cpu)
BP_MD_NS=$(bp_md_med ns_per_record)
BP_MD_BYTES=$(bp_md_med bytes_per_line)
# cg_ir OUT [ARGS...]: callgrind instructions per record of bench_pipeline
# ARGS (131072 records), the profile in OUT
cg_ir() {
	local out=$1 n ir
	shift
	valgrind --tool=callgrind --callgrind-out-file="$out" \
		--toggle-collect=ml_pipeline_record --toggle-collect=accesslog_flush \
		"$BP" --records 131072 --out "$T/cg.log" "$@" >"$T/cg.json" 2>"$T/cg.err" || return 1
	n=$(jq -r .records "$T/cg.json")
	ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
	awk -v i="$ir" -v n="$n" 'BEGIN { printf("%.0f", i / n) }'
}
CG_IR="" CG_MD_IR="" CG_TOP=""
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
	log "   callgrind (131072 records)"
	CG_MD_IR=$(cg_ir "$T/callgrind-md.out" --metadata "$T/bench-md.json") ||
		log "bench: callgrind --metadata failed: $(tail -3 "$T/cg.err")"
	if CG_IR=$(cg_ir "$T/callgrind.out"); then
		CG_TOP=$(callgrind_annotate "$T/callgrind.out" 2>/dev/null |
			awk '/file:function/ { on = 1; next }
			     on && match($0, /\( *[0-9.]+%\)/) {
				pct = substr($0, RSTART + 1, RLENGTH - 2); gsub(/ /, "", pct)
				rest = substr($0, RSTART + RLENGTH); sub(/^ +/, "", rest)
				sub(/ \[.*$/, "", rest); n = split(rest, a, ":"); fn = a[n]
				lib = rest ~ /^\.\// ? " (libc)" : ""
				if (!((fn lib) in sum)) order[++k] = fn lib
				sum[fn lib] += pct }
			     END { for (i = 1; i <= k && i <= 10; i++) printf("%.2f%% %s\n", sum[order[i]], order[i]) }' | sort -rn)
	else
		log "bench: callgrind failed: $(tail -3 "$T/cg.err")"
	fi
fi

# ---- 4. memory ----------------------------------------------------------------------
log "== 4. memory with live connections held open"
# hold_start CG N [hold args]: starts `mltraffic hold`, waits for "holding"
HOLD_PID=""
hold_start() {
	local cg=$1 n=$2 out=$T/hold.out
	shift 2
	rm -f "$T/hold.fifo" "$out"
	mkfifo "$T/hold.fifo"
	"$TR" --cgroup "$cg" --max-seconds 600 hold 127.0.0.1 "$n" "$@" <"$T/hold.fifo" >"$out" 2>&1 &
	HOLD_PID=$!
	TPIDS+=("$HOLD_PID")
	exec {HOLD_FD}>"$T/hold.fifo"
	for _ in $(seq 1200); do
		grep -q '"holding"' "$out" 2>/dev/null && return 0
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	log "bench: hold did not get there: $(cat "$out")"
	return 1
}
hold_stop() { # EOF on its stdin releases everything
	eval "exec $HOLD_FD>&-"
	HOLD_FD=""
	wait "$HOLD_PID" 2>/dev/null
	HOLD_PID=""
}
# wait_metric NAME MIN SECONDS: until the metric reaches MIN
wait_metric() {
	local v=0
	for _ in $(seq $((${3} * 5))); do
		v=$(metric "$(metrics)" "$1")
		awk -v v="$v" -v m="$2" 'BEGIN { exit !(v >= m) }' && { echo "$v"; return 0; }
		sleep 0.2
	done
	echo "$v"
	return 1
}
rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
map_memlock() { # pid -> "name bytes" per map of the daemon
	local id
	for id in $(fd_ids "$1" map_id); do bpftool map show id "$id" -j 2>/dev/null; done |
		jq -r -s '.[] | select(.name | test("^(sk_states|events|counters)$|\\.(rodata|bss|data)")) | "\(.name) \(.bytes_memlock)"'
}
declare -A MEM
MEM_CASES=()
scrape_failures() { [ -f "$T/scrape-failures" ] && wc -l <"$T/scrape-failures" || echo 0; }
mem_case() { # label N [hold args]
	local label=$1 n=$2 cg m held c0 c1 f0 lines prev
	shift 2
	cg_new; cg=$CG_NEW
	daemon_start "$cg" || die "daemon did not start"
	f0=$(scrape_failures)
	MEM[$label-idle]=$(rss_kb "$DPID" VmRSS)
	hold_start "$cg" "$n" "$@" || die "hold $n failed"
	held=$(jq -r .seconds <"$T/hold.out")
	# every open record accounted, then one live-iterator pass over them
	wait_metric meshlens_tracked_connections $((2 * n)) 60 >/dev/null ||
		ODD+=("$label: meshlens_tracked_connections did not reach $((2 * n)) within 60 s")
	wait_metric 'meshlens_events_total{source="live_socket"}' $((2 * n)) 60 >/dev/null ||
		ODD+=("$label: no complete live-iterator pass within 60 s")
	c0=$(cpu_ns "$DPID")
	sleep 5
	c1=$(cpu_ns "$DPID")
	MEM[$label-cpu]=$(awk -v t=$((c1 - c0)) 'BEGIN { printf("%.0f", t / 5e9 * 100) }')
	MEM[$label-scrape]=$(curl -s -o /dev/null -w '%{http_code} in %{time_total} s' --max-time 15 \
		"http://127.0.0.1:$DPORT/metrics")
	m=$(metrics) || ODD+=("$label: no successful scrape in 8 tries")
	MEM[$label-n]=$n
	MEM[$label-rss]=$(rss_kb "$DPID" VmRSS)
	MEM[$label-hwm]=$(rss_kb "$DPID" VmHWM)
	MEM[$label-anon]=$(rss_kb "$DPID" RssAnon)
	MEM[$label-file]=$(rss_kb "$DPID" RssFile)
	MEM[$label-shmem]=$(rss_kb "$DPID" RssShmem)
	MEM[$label-tracked]=$(metric "$m" meshlens_tracked_connections)
	MEM[$label-series]=$(metric "$m" 'meshlens_series{set="ip_pair"}')
	MEM[$label-folded]=$(metric "$m" 'meshlens_series_folded_total{set="ip_pair"}')
	MEM[$label-storagefail]=$(metric "$m" 'meshlens_events_lost_total{source="socket_storage"}')
	MEM[$label-maps]=$(map_memlock "$DPID" | awk '{ printf("%s%s %.1f KiB", NR > 1 ? ", " : "", $1, $2 / 1024) }')
	MEM[$label-maptotal]=$(map_memlock "$DPID" | awk '{ s += $2 } END { printf("%.2f", s / 1048576) }')
	# release them all at once: 2N close records in a burst
	hold_stop
	prev=-1
	for _ in $(seq 100); do
		lines=$(wc -l <"$DLOG")
		[ "$lines" -ge $((2 * n)) ] && break
		[ "$lines" = "$prev" ] && break
		prev=$lines
		sleep 0.3
	done
	m=$(metrics)
	MEM[$label-rel-lines]=$lines
	MEM[$label-rel-lost]=$(metric "$m" 'meshlens_events_lost_total{source="ringbuf"}')
	MEM[$label-scrapefail]=$(($(scrape_failures) - f0))
	daemon_stop
	cg_remove "$cg"
	MEM_CASES+=("$label")
	log "   $label: $n conns (held in ${held}s), RSS ${MEM[$label-rss]} kB (idle ${MEM[$label-idle]} kB), daemon CPU ${MEM[$label-cpu]}%, scrape ${MEM[$label-scrape]}, tracked ${MEM[$label-tracked]}, series ${MEM[$label-series]}; release: ${MEM[$label-rel-lines]}/$((2 * n)) lines, lost ${MEM[$label-rel-lost]}"
}
for n in $HOLD_NS; do mem_case "live-$n" "$n"; done
mem_case series-cap 10000 --ports 10000

# ---- 5. loss at the top storm rate -----------------------------------------------
log "== 5. loss: parallel storms, default settings"
LOSS_ROWS=()
TOP_RATE=0 TOP_LOST="" TOP_ROW=""
for p in $PARALLEL; do
	cg_new; cg=$CG_NEW
	daemon_start "$cg" || die "daemon did not start"
	pids=()
	for j in $(seq "$p"); do
		"$TR" --cgroup "$cg" --quiet --max-seconds 300 storm 127.0.0.1 "$STORM_N" >"$T/storm-$j.json" &
		pids+=($!)
		TPIDS+=($!)
	done
	ok=1
	for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
	[ "$ok" = 1 ] || die "a parallel storm failed"
	total=$((p * STORM_N))
	rate=$(cat "$T"/storm-*.json | jq -s 'map(.conns_per_sec) | add | round')
	rm -f "$T"/storm-*.json
	want=$((2 * total))
	lines=0
	for _ in $(seq 100); do
		lines=$(wc -l <"$DLOG")
		[ "$lines" -ge "$want" ] && break
		sleep 0.1
	done
	m=$(metrics)
	lost=$(metric "$m" 'meshlens_events_lost_total{source="ringbuf"}')
	closes=$(metric "$m" 'meshlens_events_total{source="conn_close"}')
	daemon_stop
	cg_remove "$cg"
	row="$p|$total|$rate|$want|$lines|$closes|$lost"
	LOSS_ROWS+=("$row")
	log "   $p storms: $total conns at $rate conn/s: $lines/$want log lines, $closes close records, lost(ringbuf) $lost"
	if [ "$rate" -gt "$TOP_RATE" ]; then TOP_RATE=$rate; TOP_ROW=$row; fi
done

# ---- 6. scrape latency with idle metrics connections ------------------------------
log "== 6. scrape latency: /metrics alone, then beside 1000 idle connections held open"
# scrape_ms N: the median time of N scrapes, in ms (a failed one counts 5 s)
scrape_ms() {
	for _ in $(seq "$1"); do
		curl -s -o /dev/null -w '%{time_total}\n' --max-time 5 "http://127.0.0.1:$DPORT/metrics" ||
			echo 5
	done | awk '{ print $1 * 1000 }' | median
}
cg_new; cg=$CG_NEW
daemon_start "$cg" || die "daemon did not start"
SCRAPE_ALONE=$(scrape_ms 50)
# held 9 s: the endpoint cuts a silent connection after 10 s
"$BUILD/mlpkt" connect-flood 127.0.0.1 "$DPORT" 1000 --hold-ms 9000 >"$T/flood.json" &
FPID=$!
TPIDS+=("$FPID")
for _ in $(seq 100); do grep -q flooding "$T/flood.json" 2>/dev/null && break; sleep 0.05; done
grep -q flooding "$T/flood.json" || die "connect-flood did not start"
SCRAPE_IDLE=$(scrape_ms 50)
SCRAPE_HELD=$(ss -Htn state established "( sport = :$DPORT )" | wc -l)
wait "$FPID"
daemon_stop
cg_remove "$cg"
log "   scrape median ${SCRAPE_ALONE} ms alone, ${SCRAPE_IDLE} ms beside $SCRAPE_HELD idle connections"

# ---- report -----------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NCPU=$(nproc)
KERNEL=$(uname -r)
VERSION=$("$ML" --version 2>/dev/null | awk '{ print $2 }')
if [ -n "${BENCH_COMMIT:-}" ]; then
	COMMIT=$BENCH_COMMIT
else
	COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	# the binary measured says whether it was built with uncommitted
	# changes (the Makefile's version stamp, which leaves this report out)
	[[ $VERSION != *-dirty ]] || COMMIT="$COMMIT (+ uncommitted changes)"
fi
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ELAPSED=$(($(date +%s) - START_TS))
HOOKS=$("$ML" --probe 2>/dev/null | awk '{ printf("%s%s: %s", NR > 1 ? "; " : "", $1, $2) }')

verdict() { # value op target
	awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
		if (v == "" || v == "nan" || v == "n/a") { print "n/a"; exit }
		ok = op == ">=" ? v >= t : v <= t; print ok ? "met" : "MISSED" }'
}
R_ALL=${MED[unpinned-ratio]}
R_PIN=${MED[pinned-ratio]}
[ "$DROPS" = yes ] && R_ALL=${MED[unpinned-ratio-drops]} && R_PIN=${MED[pinned-ratio-drops]}
IFS='|' read -r _ TOP_TOTAL _ TOP_WANT TOP_LINES _ TOP_LOST <<<"$TOP_ROW"
TOP_MISSING=$((TOP_WANT - TOP_LINES))
LAST_LIVE=""
for c in "${MEM_CASES[@]}"; do [ "${MEM[$c-n]}" = 100000 ] && LAST_LIVE=$c; done
RSS100K=""
[ -n "$LAST_LIVE" ] && RSS100K=$(awk -v k="${MEM[$LAST_LIVE-rss]}" 'BEGIN { printf("%.1f", k / 1024) }')
drops_cell() {
	case $DROPS in
	yes) fmt "${MED[$1-drops]}" %.0f ;;
	failed) echo "n/a (--drops failed to start)" ;;
	*) echo "n/a (drops not built yet)" ;;
	esac
}
drops_ratio() { if [ "$DROPS" = yes ]; then fmt "${MED[$1-ratio-drops]}" %.3f; else echo "n/a"; fi; }

{
	echo "# meshlens benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh); figures, not assertions."
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| date | $NOW |"
	echo "| commit | $COMMIT (meshlens ${VERSION:-?}) |"
	echo "| machine | $CPU_MODEL, $NCPU cores, $(awk '/MemTotal/ { printf("%.0f GiB", $2 / 1048576) }' /proc/meminfo) |"
	echo "| kernel | $KERNEL |"
	echo "| hooks | $HOOKS |"
	echo "| run time | ${ELAPSED} s |"
	echo
	echo "## Targets"
	echo
	echo "| target | figure | |"
	echo "|---|---|---|"
	echo "| conn/s with everything on >= 0.95 of without | $(fmt "$R_ALL" %.3f) unpinned, $(fmt "$R_PIN" %.3f) pinned$([ "$DROPS" = yes ] && echo " (with --drops; without it $(fmt "${MED[unpinned-ratio]}" %.3f) / $(fmt "${MED[pinned-ratio]}" %.3f))" || echo ' (drops n/a: without --drops)') | unpinned $(verdict "$R_ALL" '>=' 0.95), pinned $(verdict "$R_PIN" '>=' 0.95) |"
	echo "| BPF time <= 1.15 x the floor program, same run (section 2) | $(fmt "$COST_MESHLENS_VS_FLOOR" %.2f) x ($(fmt "$COST_MESHLENS" %.0f) ns vs $(fmt "$COST_FLOOR" %.0f) ns per connection)$([ -n "${COST_MESHLENS_DROPS_VS_FLOOR:-}" ] && echo ", $(fmt "$COST_MESHLENS_DROPS_VS_FLOOR" %.2f) x with --drops") | $(verdict "$COST_MESHLENS_VS_FLOOR" '<=' 1.15) |"
	echo "| reader gone <= 1.1 x reader present (BPF time) | $(fmt "$COST_GONE_VS_PRESENT" %.2f) x | $(verdict "$COST_GONE_VS_PRESENT" '<=' 1.1) |"
	echo "| daemon <= 1.5 us CPU per connection | $(fmt "${MED[unpinned-cpu]}" %.2f) us unpinned, $(fmt "${MED[pinned-cpu]}" %.2f) us pinned | $(verdict "${MED[unpinned-cpu]}" '<=' 1.5) |"
	echo "| user space >= 3,000,000 records/s on one core | $(fmt "$BP_RATE" %.0f) records/s | $(verdict "$BP_RATE" '>=' 3000000) |"
	echo "| user space with everything on (\`--metadata\`: names in every line, the workload and Istio sets, the histograms) >= 2,000,000 records/s | $(fmt "$BP_MD_RATE" %.0f) records/s | $(verdict "$BP_MD_RATE" '>=' 2000000) |"
	echo "| 0 records lost at the top storm rate | $TOP_LOST lost in the kernel, $TOP_MISSING log lines missing of $TOP_WANT ($TOP_TOTAL conns at $TOP_RATE conn/s) | $( [ "$TOP_LOST" = 0 ] && [ "$TOP_MISSING" -le 0 ] && echo met || echo MISSED) |"
	echo "| RSS <= 64 MiB at 100 000 live connections | ${RSS100K:-n/a} MiB | $(verdict "$RSS100K" '<=' 64) |"
	echo "| scrapes answer beside 1000 idle connections (section 6) | median $(fmt "$SCRAPE_IDLE" %.2f) ms beside $SCRAPE_HELD idle, $(fmt "$SCRAPE_ALONE" %.2f) ms alone | $(verdict "$SCRAPE_IDLE" '<=' 100) |"
	echo
	echo "## 1. Connection rate (mltraffic storm)"
	echo
	echo "Loopback storm in a private observed cgroup: one client, one forked server; connect, write 100 B, read 100 B, close; $STORM_N connections per run; median of $PAIRS pairs, each a run without meshlens, one with a fresh daemon (\`-o FILE -m 127.0.0.1:PORT\`) and one with \`--drops\` when it exists, in alternating order (odd pairs without meshlens first, even pairs last). \"pinned\": \`--cpu 0,0\` (client and server on CPU 0), daemon under \`taskset -c 1\`. The ratio is the median of per-pair ratios. Daemon CPU: CPU time of all the daemon's threads during the storm (schedstat), per connection."
	echo
	echo "| | without meshlens | meshlens | ratio (range) | meshlens --drops | ratio | daemon CPU per conn |"
	echo "|---|---|---|---|---|---|---|"
	for pin in unpinned pinned; do
		echo "| $pin | $(fmt "${MED[$pin-off]}" %.0f) conn/s | $(fmt "${MED[$pin-on]}" %.0f) conn/s | $(fmt "${MED[$pin-ratio]}" %.3f) ($(spread "${RATES[$pin-ratio]}")) | $(drops_cell "$pin") | $(drops_ratio "$pin") | $(fmt "${MED[$pin-cpu]}" %.2f) us |"
	done
	echo
	echo "Every run (conn/s): "
	for pin in unpinned pinned; do
		echo "- $pin without:${RATES[$pin-off]}"
		echo "- $pin with:${RATES[$pin-on]}"
		[ "$DROPS" = yes ] && echo "- $pin with --drops:${RATES[$pin-drops]}"
	done
	case $DROPS in
	n/a) echo; echo "--drops: n/a (drops not built yet): \`${DROPS_WHY:-}\`" ;;
	failed) echo; echo "--drops: the daemon did not start: \`${DROPS_WHY:-}\`" ;;
	esac
	echo
	echo "## 2. In-kernel cost (kernel.bpf_stats_enabled=1)"
	echo
	echo "bench/cost.sh: the sum of run_time_ns over a program set (kernel.bpf_stats_enabled=1), per connection of a $STORM_N-connection loopback storm (2 observed sockets each), ${BENCH_COST_ROUNDS:-5} rounds, every kind once per round on a fresh cgroup in a rotated order; medians over rounds, and ratios to the floor of the same round. The floor (bench/bpf/floor.bpf.c) is the least any per-socket SK_STORAGE design pays: storage of meshlens's size created at connect/accept, the state callback set, storage deleted at close, nothing recorded. \"gone\": meshlens's programs with its daemon stopped (links pinned), the reader absent. \"tcplife\": libbpf-tools' tcplife (node-wide; one line per connection to a file). \"noopen\"/\"norec\": meshlens built without its open records / without any record (the ablations that show what the records cost)."
	echo
	cat "$T/cost.md"
	echo
	if [ -n "${COST_NOREC:-}" ] && [ -n "${COST_NOOPEN:-}" ]; then
		echo "Where meshlens's time above the floor goes (differences of the medians above): the records $(awk -v a="$COST_MESHLENS" -v b="$COST_NOREC" 'BEGIN { printf("%.0f", a - b) }') ns per connection (open records $(awk -v a="$COST_MESHLENS" -v b="$COST_NOOPEN" 'BEGIN { printf("%.0f", a - b) }') ns, close records $(awk -v a="$COST_NOOPEN" -v b="$COST_NOREC" 'BEGIN { printf("%.0f", a - b) }') ns: 4 and 2 records of 152 bytes for 2 sockets), and the bookkeeping the floor does not do $(awk -v a="$COST_NOREC" -v b="$COST_FLOOR" 'BEGIN { printf("%.0f", a - b) }') ns (norec − floor: cgroup/connect4 and cgroup/sock_release runs, the storage lookups at establishment and close, socket cookie, clock and cgroup reads). meshlens without any record is $(fmt "$COST_NOREC_VS_FLOOR" %.2f) x the floor."
		echo
	fi
	if [ -n "$PERF_SUMMARY" ]; then
		echo "### Where it goes (perf)"
		echo
		echo "\`perf record -a -g\` (cpu-clock) over one pinned $STORM_N-connection storm with meshlens ($(fmt "$PERF_RATE" %.0f) conn/s, bpf_stats off, so no instrumentation in the figures): CPU ns per connection and share of the storm processes' own CPU time, by program and by the helper a sample was in (bench/perf_summary.awk). Only the storm's two processes, the daemon and the rcu_tasks_trace kthread count: other processes on the machine (other meshlens instances included) do not; the daemon ran on the other CPU. With cpu-clock sampling in a VM, time spent with interrupts off is charged to the point where they come back on."
		echo
		echo '```'
		echo "$PERF_SUMMARY"
		echo '```'
		echo
	fi
	echo "## 3. User-space throughput (bench_pipeline)"
	echo
	echo "$BP_RECORDS synthetic records through ml_pipeline_record() on one core (taskset -c 1): per connection an OPEN and a CLOSE record for each socket, 300 IP pairs (10% IPv6), varying bytes; real file sink flushed every 1000 records, real metrics aggregation; after a sync (the storms' logs written back), 3 runs of each case, alternating; medians."
	echo
	echo "| case | records/s (write(2) included) | records/s (without the flushes) | ns per record | bytes per access-log line | callgrind instructions per record |"
	echo "|---|---|---|---|---|---|"
	echo "| IP pairs | $(fmt "$BP_RATE" %.0f) | $(fmt "$BP_RATE_CPU" %.0f) | $(fmt "$BP_NS" %.0f) | $(fmt "$BP_BYTES" %.1f) | ${CG_IR:-n/a} |"
	echo "| + \`--metadata\` (4 workloads by CIDR: names in every line, the workload and Istio families) | $(fmt "$BP_MD_RATE" %.0f) | $(fmt "$BP_MD_RATE_CPU" %.0f) | $(fmt "$BP_MD_NS" %.0f) | $(fmt "$BP_MD_BYTES" %.1f) | ${CG_MD_IR:-n/a} |"
	if [ -n "$CG_TOP" ]; then
		echo
		echo "Callgrind, self cost, top functions (inside ml_pipeline_record + accesslog_flush):"
		echo
		while read -r pct fn; do echo "- $pct $fn"; done <<<"$CG_TOP"
	fi
	echo
	echo "## 4. Memory"
	echo
	echo "\`mltraffic hold\` keeps N loopback connections open in the observed cgroup (2N observed sockets). Figures after every open record was accounted and one live-iterator pass went over them. BPF maps: bytes_memlock of the daemon's maps; per-socket storage (sk_states elements) is charged to each socket, not to the map. \"series cap\": 10000 listener ports x 1 connection = 20000 candidate series (both directions) against max_series 10000."
	echo
	echo "| case | connections | daemon VmRSS | idle RSS (after ready) | VmHWM | RssAnon / RssFile / RssShmem | tracked | series (folded) | BPF maps (bytes_memlock) |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for c in "${MEM_CASES[@]}"; do
		echo "| $c | ${MEM[$c-n]} | $(fmt "${MEM[$c-rss]}" %d) kB | ${MEM[$c-idle]} kB | ${MEM[$c-hwm]} kB | ${MEM[$c-anon]} / ${MEM[$c-file]} / ${MEM[$c-shmem]} kB | ${MEM[$c-tracked]} | ${MEM[$c-series]} (${MEM[$c-folded]}) | ${MEM[$c-maptotal]} MiB: ${MEM[$c-maps]} |"
	done
	echo
	echo "While holding (after the first live pass): the daemon's CPU use over 5 s (100% = one core) and one scrape of /metrics. Then every connection is closed at once (2N close records in a burst): access-log lines and records lost in the kernel (ringbuf full) with default settings."
	echo
	echo "| case | daemon CPU while idle-holding | scrape | failed scrapes (503/timeout) | lines after release / expected | lost on release (ringbuf) |"
	echo "|---|---|---|---|---|---|"
	for c in "${MEM_CASES[@]}"; do
		echo "| $c | ${MEM[$c-cpu]}% | ${MEM[$c-scrape]} | ${MEM[$c-scrapefail]} | ${MEM[$c-rel-lines]} / $((2 * ${MEM[$c-n]})) | ${MEM[$c-rel-lost]} |"
	done
	echo
	echo "## 5. Loss at the top storm rate"
	echo
	echo "Default settings (ringbuf 8 MiB, drain every 50 ms); P storms of $STORM_N connections in parallel; expected = 2 records per connection."
	echo
	echo "| parallel storms | connections | aggregate conn/s | expected lines | access-log lines | close records | lost (ringbuf) |"
	echo "|---|---|---|---|---|---|---|"
	for r in "${LOSS_ROWS[@]}"; do
		IFS='|' read -r a b c d e f g <<<"$r"
		echo "| $a | $b | $c | $d | $e | $f | $g |"
	done
	echo
	echo "## 6. Scrape latency beside idle connections"
	echo
	echo "One daemon, no traffic: 50 scrapes of /metrics (curl time_total, median), then 50 more while \`mlpkt connect-flood\` holds 1000 connections to the endpoint open without a request (held 9 s, under the endpoint's 10 s inactivity cut). Connections established to the port during the second series: $SCRAPE_HELD."
	echo
	echo "| | median scrape |"
	echo "|---|---|"
	echo "| alone | $(fmt "$SCRAPE_ALONE" %.2f) ms |"
	echo "| beside 1000 idle connections | $(fmt "$SCRAPE_IDLE" %.2f) ms |"
	if [ "${#ODD[@]}" -gt 0 ]; then
		echo
		echo "## Seen during the run"
		echo
		for o in "${ODD[@]}"; do echo "- $o"; done
	fi
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"

# table on stdout
printf '\n%-52s %s\n' "meshlens bench ($NOW, $COMMIT, $KERNEL, $NCPU x $CPU_MODEL)" ""
printf '%-52s %s\n' \
	"conn/s unpinned: without / with / ratio" "$(fmt "${MED[unpinned-off]}" %.0f) / $(fmt "${MED[unpinned-on]}" %.0f) / $(fmt "${MED[unpinned-ratio]}" %.3f)" \
	"conn/s pinned:   without / with / ratio" "$(fmt "${MED[pinned-off]}" %.0f) / $(fmt "${MED[pinned-on]}" %.0f) / $(fmt "${MED[pinned-ratio]}" %.3f)" \
	"conn/s with --drops (unpinned / pinned)" "$(drops_cell unpinned) / $(drops_cell pinned)" \
	"BPF ns per connection: meshlens / floor / ratio" "$(fmt "$COST_MESHLENS" %.0f) / $(fmt "$COST_FLOOR" %.0f) / $(fmt "$COST_MESHLENS_VS_FLOOR" %.2f)" \
	"BPF, reader gone / present; tcplife / floor" "$(fmt "$COST_GONE_VS_PRESENT" %.2f); $(fmt "${COST_TCPLIFE_VS_FLOOR:-}" %.2f)" \
	"pipeline records/s, one core (without write)" "$(fmt "$BP_RATE" %.0f) ($(fmt "$BP_RATE_CPU" %.0f))" \
	"pipeline records/s with --metadata (without write)" "$(fmt "$BP_MD_RATE" %.0f) ($(fmt "$BP_MD_RATE_CPU" %.0f))" \
	"pipeline instructions per record (callgrind)" "${CG_IR:-n/a}; ${CG_MD_IR:-n/a} with --metadata" \
	"bytes per access-log line" "$(fmt "$BP_BYTES" %.1f)"
for c in "${MEM_CASES[@]}"; do
	printf '%-52s %s\n' "RSS $c (${MEM[$c-n]} conns)" "$(awk -v k="${MEM[$c-rss]}" 'BEGIN { printf("%.1f MiB", k / 1024) }'), maps ${MEM[$c-maptotal]} MiB, series ${MEM[$c-series]}"
done
for r in "${LOSS_ROWS[@]}"; do
	IFS='|' read -r a b c d e f g <<<"$r"
	printf '%-52s %s\n' "loss, $a parallel storms ($c conn/s)" "lost $g, lines $e/$d"
done
printf '%-52s %s\n' "results" "$OUT (${ELAPSED} s)"
