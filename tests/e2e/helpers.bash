# Shared set-up for the end-to-end tests: a private cgroup v2 group per
# test, the real daemon attached to it, the traffic tool run inside it,
# and cleanup of everything on success and failure alike.
# shellcheck shell=bash

# `run !` (the negation that fails a test) needs bats 1.5; Debian 12 has 1.8
bats_require_minimum_version 1.5.0

BUILD=${MESHLENS_BUILD:-$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/build}
MESHLENS=$BUILD/meshlens
MLTRAFFIC=$BUILD/mltraffic

# Skip loudly when the machine cannot run BPF; under CI that is a failure.
require_bpf() {
	local why=""
	[ "$(id -u)" = 0 ] || why="not root"
	[ -n "$why" ] || [ -r /sys/kernel/btf/vmlinux ] || why="no kernel BTF"
	[ -n "$why" ] || grep -q cgroup2 /proc/self/mountinfo || why="no cgroup v2"
	[ -z "$why" ] && return 0
	if [ "${CI:-}" = true ]; then
		echo "end-to-end test cannot run: $why (CI=true makes this a failure)" >&2
		return 1
	fi
	echo "# SKIPPING end-to-end test: $why" >&3
	skip "$why"
}

cgroup2_root() {
	awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo
}

# ml_setup: private cgroup + temp dir; sets CG, CGREL, T
ml_setup() {
	require_bpf
	T=$(mktemp -d /tmp/meshlens-e2e.XXXXXX)
	CGROOT=$(cgroup2_root)
	CGREL=meshlens-e2e-$$-${BATS_TEST_NUMBER}
	CG=$CGROOT/$CGREL
	mkdir "$CG"
	# pinned maps and links of this test's daemons (see --pin-path)
	PIN=/sys/fs/bpf/meshlens-e2e-$$-${BATS_TEST_NUMBER}
	DAEMON_PID=""
	NETNS=()
}

# cgroup_attached CG: one line "ATTACH_TYPE PROG_ID" per BPF link on cgroup
# CG. (`bpftool cgroup show` fails on 5.10: it asks for attach types that
# kernel does not have.)
cgroup_attached() {
	local id
	id=$(stat -c %i "$1")
	bpftool link show -j | jq -r --argjson id "$id" \
		'.[] | select(.cgroup_id == $id) | "\(.attach_type) \(.prog_id)"'
}

# Move every process out of a cgroup and remove it, children first.
remove_cgroup() {
	local cg=$1 p sub
	[ -d "$cg" ] || return 0
	for sub in "$cg"/*/; do
		[ -d "$sub" ] && remove_cgroup "${sub%/}"
	done
	while read -r p; do
		[ -n "$p" ] && echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null
	done <"$cg/cgroup.procs"
	rmdir "$cg" 2>/dev/null || { sleep 0.2; rmdir "$cg"; }
}

ml_teardown() {
	local ns
	stop_prometheus
	if [ -n "${DAEMON_PID:-}" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
	fi
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	[ -n "${PIN:-}" ] && "$MESHLENS" --detach --pin-path "$PIN" >/dev/null 2>&1
	[ -n "${CG:-}" ] && remove_cgroup "$CG"
	[ -n "${T:-}" ] && rm -rf "$T"
	return 0
}

# start_prometheus: a real Prometheus scraping $MPORT every second
# (tests/e2e/prometheus.yml.in), ready; PROMURL and PROM_PID set
start_prometheus() {
	local port
	command -v prometheus >/dev/null || { echo "prometheus is not installed (make deps)" >&2; return 1; }
	port=$(free_port) || return 1
	sed "s/@TARGET@/127.0.0.1:$MPORT/" "$BATS_TEST_DIRNAME/prometheus.yml.in" >"$T/prometheus.yml"
	promtool check config "$T/prometheus.yml" >/dev/null || return 1
	prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" \
	  --web.listen-address="127.0.0.1:$port" >"$T/prometheus.log" 2>&1 &
	PROM_PID=$!
	PROMURL=http://127.0.0.1:$port
	# shellcheck disable=SC2016 # wait_for evaluates its condition each try
	wait_for 'curl -sf "$PROMURL/-/ready" >/dev/null' || { cat "$T/prometheus.log" >&2; return 1; }
}

stop_prometheus() {
	[ -n "${PROM_PID:-}" ] || return 0
	kill -TERM "$PROM_PID" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$PROM_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$PROM_PID" 2>/dev/null || true
	wait "$PROM_PID" 2>/dev/null || true
	PROM_PID=""
}

# prom_result EXPR: the instant query's result vector (JSON), [] on error
prom_result() {
	curl -s --max-time 5 "$PROMURL/api/v1/query" --data-urlencode "query=$1" |
	  jq -c 'if .status == "success" then .data.result else [] end'
}

# prom_query EXPR: the value of a one-element instant vector, "" if none
prom_query() {
	prom_result "$1" | jq -r 'if length == 1 then .[0].value[1] else "" end'
}

# launch CMD...: run CMD in the background with stderr to $T/daemon.err,
# DAEMON_PID set; wait (up to 10 s) for its "ready" line
launch() {
	"$@" 2>"$T/daemon.err" &
	DAEMON_PID=$!
	for _ in $(seq 100); do
		grep -q ready "$T/daemon.err" 2>/dev/null && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "meshlens did not become ready:" >&2
	cat "$T/daemon.err" >&2
	return 1
}

# start_daemon [extra args...]: attach to $CG, log to $T/access.log, wait for "ready"
start_daemon() {
	launch "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access.log" -m off "$@"
}

# free_port: a loopback TCP port nothing uses, below the ephemeral range
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 12000))
		[ -z "$(ss -Htan "( sport = :$p )")" ] && { echo "$p"; return 0; }
	done
	echo "no free port found" >&2
	return 1
}

# start_metrics_daemon [extra args...]: like start_daemon, but with the
# metrics endpoint on 127.0.0.1:$MPORT (a free port); sets MPORT, MURL
start_metrics_daemon() {
	MPORT=$(free_port) || return 1
	MURL=http://127.0.0.1:$MPORT
	launch "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access.log" -m "127.0.0.1:$MPORT" "$@"
}

# scrape_to FILE [curl args...]: GET $MURL/metrics into FILE; fails unless 200
scrape_to() {
	local f=$1 code; shift
	code=$(curl -sS --max-time 5 -o "$f" -w '%{http_code}' "$@" "$MURL/metrics") || return 1
	[ "$code" = 200 ] || { echo "GET /metrics: HTTP $code" >&2; return 1; }
}

# samples_in MODE FILE NAME [k="v" ...]: over the samples of metric NAME
# whose label set contains every k="v" given, MODE sum prints the sum of
# the values (0 when there is none), MODE count the number of samples.
samples_in() {
	local mode=$1 file=$2 name=$3; shift 3
	awk -v mode="$mode" -v name="$name" -v want="$*" '
	BEGIN { n = split(want, w, " ") }
	/^#/ || NF == 0 { next }
	{
		mname = $0; sub(/[{ \t].*/, "", mname)
		if (mname != name) next
		rest = substr($0, length(mname) + 1); labels = ","
		if (substr(rest, 1, 1) == "{") {
			e = index(rest, "}")	# our label values hold no "}"
			labels = "," substr(rest, 2, e - 2) ","
			rest = substr(rest, e + 1)
		}
		for (i = 1; i <= n; i++) if (index(labels, "," w[i] ",") == 0) next
		split(rest, f, " ")
		sum += f[1]; cnt++
	}
	END { if (mode == "count") print cnt + 0; else printf "%.0f\n", sum }' "$file"
}

# metric NAME [k="v" ...]: scrape now; sum of the matching samples, 0 if absent
metric() {
	scrape_to "$T/scrape.txt" || return 1
	samples_in sum "$T/scrape.txt" "$@"
}

# expect_in FILE EXPECTED NAME [k="v" ...]: the matching samples of a saved
# scrape sum to EXPECTED; says what differs otherwise
expect_in() {
	local file=$1 want=$2 got; shift 2
	got=$(samples_in sum "$file" "$@")
	[ "$got" = "$want" ] && return 0
	echo "$1{${*:2}}: got $got, want $want; samples of $1:" >&2
	grep -E "^$1[{ ]" "$file" >&2
	return 1
}

# wait_metric EXPECTED NAME [k="v" ...]: poll /metrics (up to 5 s: records
# reach the daemon every drain interval) until the sum is EXPECTED
wait_metric() {
	local want=$1 got=""; shift
	for _ in $(seq 50); do
		got=$(metric "$@") && [ "$got" = "$want" ] && return 0
		sleep 0.1
	done
	echo "after 5 s: $1{${*:2}} is '$got', want $want; samples of $1:" >&2
	grep -E "^$1[{ ]" "$T/scrape.txt" >&2
	return 1
}

# stop_daemon: SIGTERM, wait, expect exit 0
stop_daemon() {
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	local rc=$?
	DAEMON_PID=""
	[ "$rc" = 0 ] || { echo "daemon exited $rc" >&2; cat "$T/daemon.err" >&2; return 1; }
}

# traffic ARGS...: run the traffic tool inside $CG; ground truth -> $T/truth.json
traffic() {
	"$MLTRAFFIC" --cgroup "$CG" "$@" >>"$T/truth.json"
}

# traffic_in_netns NS ARGS...: the traffic tool inside $CG and network
# namespace NS. `ip netns exec` remounts /sys, hiding the cgroup v2 mount
# from inside, so the process joins the cgroup before entering the namespace.
traffic_in_netns() {
	local ns=$1; shift
	bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec ip netns exec "$@"' \
		_ "$CG" "$ns" "$MLTRAFFIC" "$@" >>"$T/truth.json"
}

# truth_sum FIELD: sum of FIELD over the ground truth's "conn" lines
truth_sum() {
	jq -s --arg f "$1" 'map(select(.event == "conn") | .[$f]) | add // 0' "$T/truth.json"
}

# wait_records N: wait (up to 5 s) until the access log has N lines
wait_records() {
	local n=$1
	for _ in $(seq 50); do
		[ "$(wc -l <"$T/access.log" 2>/dev/null || echo 0)" -ge "$n" ] && return 0
		sleep 0.1
	done
	echo "expected $n records, access log has $(wc -l <"$T/access.log"):" >&2
	cat "$T/access.log" >&2
	return 1
}

# version_ge A B: version A (a kernel release, say) is B or later
version_ge() {
	[ "$(printf '%s\n%s\n' "$2" "${1%%-*}" | sort -V | head -n1)" = "$2" ]
}

# wait_err TEXT [N]: wait (up to 10 s) until N (default 1) lines of the
# daemon's stderr contain TEXT (fixed text, not a pattern)
wait_err() {
	local n=${2:-1}
	for _ in $(seq 100); do
		[ "$(grep -cF -- "$1" "$T/daemon.err")" -ge "$n" ] && return 0
		sleep 0.1
	done
	echo "expected $n lines with '$1' on stderr:" >&2
	cat "$T/daemon.err" >&2
	return 1
}

# wait_for 'COMMAND LINE': evaluate it (up to 10 s) until it succeeds;
# single-quote it so that what it expands is expanded each time
wait_for() {
	for _ in $(seq 100); do
		eval "$1" && return 0
		sleep 0.1
	done
	echo "after 10 s still failing: $1" >&2
	return 1
}

# lines_in FILE: its number of lines, 0 when it does not exist
lines_in() {
	if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# drop_packets_of COOKIE: packets of the access log's drop lines of that socket
drop_packets_of() {
	jq -s --argjson c "$1" \
		'map(select(.type == "drop" and .sock_cookie == $c)) | (map(.packets) | add // 0)' \
		"$T/access.log"
}

# check_conns: every "conn" of the ground truth has exactly one outbound
# and one inbound record with exact bytes each way; prints mismatches.
# Grouped by address pair: a long or slow run (a VM) may reuse a client
# port, and then the truth's connections of that pair and its records
# must agree as multisets.
check_conns() {
	local bad
	bad=$(jq -n --slurpfile gt "$T/truth.json" --slurpfile log "$T/access.log" '
	  def tuple: [.src_addr, .src_port, .dst_addr, .dst_port];
	  ($log | map(select(.type == null))) as $recs
	  | [ $gt[] | select(.event == "conn") ] | group_by(tuple)
	  | map(. as $cs | ($cs[0] | tuple) as $t
	    | ($recs | map(select(tuple == $t))) as $r
	    | ($r | map(select(.direction == "outbound") | [.sent_bytes, .received_bytes]) | sort) as $out
	    | ($r | map(select(.direction == "inbound") | [.sent_bytes, .received_bytes]) | sort) as $in
	    | select(($r | length) != 2 * ($cs | length)
	        or $out != ($cs | map([.client_sent, .client_received]) | sort)
	        or $in != ($cs | map([.server_sent, .server_received]) | sort)
	        or ($r | any(.success != true or .family != $cs[0].family)))
	    | {truth: $cs, records: $r}) ')
	if [ "$bad" != "[]" ]; then
		echo "mismatches between ground truth and access log:" >&2
		echo "$bad" >&2
		return 1
	fi
}

# count_truth EVENT: number of ground-truth lines of that event
count_truth() {
	jq -s --arg e "$1" 'map(select(.event == $e)) | length' "$T/truth.json"
}
