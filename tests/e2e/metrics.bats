#!/usr/bin/env bats
# Metrics endpoint end to end: the real daemon serving Prometheus text on a
# free loopback port, traffic from the traffic tool inside a private cgroup,
# and every counter compared exactly with the tool's own counts (jq over
# $T/truth.json), with the kernel's own retransmission counter, with
# promtool, and with a real Prometheus server scraping the daemon.

load helpers
load metrics_helpers

# --- helpers of this file ----------------------------------------------------

setup() {
	ml_setup
	BG_PIDS=()
	PROM_PID=""
	MPORT=""
}

teardown() {
	local p
	stop_prometheus
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	# every traffic tool (client and forked server) runs in the private cgroup
	if [ -n "${CG:-}" ] && [ -e "$CG/cgroup.kill" ]; then
		echo 1 >"$CG/cgroup.kill" 2>/dev/null || true
	fi
	for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	ml_teardown
}

# --- exposition format ---------------------------------------------------------

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "/metrics without traffic: 200, text format 0.0.4, promtool accepts it silently" {
	start_metrics_daemon
	curl -sS --max-time 5 -D "$T/headers" -o "$T/body" "$MURL/metrics"
	[ "$(head -1 "$T/headers" | awk '{ print $2 }')" = 200 ]
	[ "$(header "$T/headers" content-type)" = "text/plain; version=0.0.4; charset=utf-8" ]
	[ -s "$T/body" ]
	promtool_ok "$T/body"
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "/metrics after traffic (connections, refused connects, IPv6): promtool accepts it silently" {
	start_metrics_daemon
	traffic many 127.0.0.1 10 --base-bytes 500
	traffic pairs ::1 123:4567 0:1
	closed=$(free_port)
	traffic connect 127.0.0.1 "$closed"
	[ "$(jq -r 'select(.event == "connect") | .outcome' "$T/truth.json")" = refused ]
	wait_metric 12 meshlens_tcp_connections_closed_total 'direction="outbound"'
	wait_metric 1 meshlens_tcp_connections_failed_total 'direction="outbound"'
	scrape_to "$T/body"
	promtool_ok "$T/body"
	# every per-pair metric is a documented counter with exactly the four labels
	for m in opened closed failed; do
		grep -qx "# TYPE meshlens_tcp_connections_${m}_total counter" "$T/body"
		grep -q "^# HELP meshlens_tcp_connections_${m}_total " "$T/body"
	done
	for m in sent_bytes received_bytes retransmits; do
		grep -qx "# TYPE meshlens_tcp_${m}_total counter" "$T/body"
		grep -q "^# HELP meshlens_tcp_${m}_total " "$T/body"
	done
	[ "$(grep -c '^meshlens_tcp_' "$T/body")" -gt 0 ]
	run awk '/^meshlens_tcp_/ {
	           l = $0; sub(/^[^{]*\{/, "", l); sub(/\}.*/, "", l)
	           n = split(l, kv, ","); split("", seen); good = 0
	           bucket = $0 ~ /^[a-z_]*_bucket\{/
	           for (i = 1; i <= n; i++) {
	             k = kv[i]; sub(/=.*/, "", k)
	             if (k == "") continue
	             if (k in seen || k !~ /^(direction|src_ip|dst_ip|dst_port|le)$/ ||
	                 (k == "le" && !bucket)) { good = -9; break }
	             seen[k] = 1; good++
	           }
	           # a histogram bucket has le too
	           if (good != 4 + bucket) print }' "$T/body"
	[ -z "$output" ]
}

# --- per IP pair counters ---------------------------------------------------------

@test "per-IP-pair counters equal the traffic tool's counts, once per direction" {
	start_metrics_daemon
	traffic many 127.0.0.1 25 --base-bytes 1000
	n=$(count_truth conn)
	[ "$n" = 25 ]
	port=$(truth_port)
	wait_metric "$n" meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$port" outbound)
	wait_metric "$n" meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$port" inbound)
	scrape_to "$T/m"
	out=$(pair 127.0.0.1 127.0.0.1 "$port" outbound)
	in=$(pair 127.0.0.1 127.0.0.1 "$port" inbound)
	for s in "$out" "$in"; do
		expect_in "$T/m" "$n" meshlens_tcp_connections_opened_total $s
		expect_in "$T/m" "$n" meshlens_tcp_connections_closed_total $s
		expect_in "$T/m" 0 meshlens_tcp_connections_failed_total $s
		expect_in "$T/m" 0 meshlens_tcp_retransmits_total $s
	done
	expect_in "$T/m" "$(truth_sum client_sent)" meshlens_tcp_sent_bytes_total $out
	expect_in "$T/m" "$(truth_sum client_received)" meshlens_tcp_received_bytes_total $out
	expect_in "$T/m" "$(truth_sum server_sent)" meshlens_tcp_sent_bytes_total $in
	expect_in "$T/m" "$(truth_sum server_received)" meshlens_tcp_received_bytes_total $in
	# one series per direction; dst_port is the server's port, never a client port
	[ "$(samples_in count "$T/m" meshlens_tcp_connections_closed_total)" = 2 ]
	[ "$(samples_in count "$T/m" meshlens_tcp_sent_bytes_total)" = 2 ]
	run grep -oE '^meshlens_tcp_[a-z_]+\{[^}]*' "$T/m"
	[ "$(grep -oE 'dst_port="[0-9]+"' <<<"$output" | sort -u)" = "dst_port=\"$port\"" ]
	# the access log agrees connection by connection
	wait_records $((2 * n))
	check_conns
}

@test "IPv6 pairs are labelled with IPv6 addresses; v4-mapped sockets count as IPv4" {
	start_metrics_daemon
	traffic pairs ::1 123:4567 0:1 1:0
	p6=$(truth_port)
	traffic pairs ::ffff:127.0.0.1 777:8888
	p4=$(jq -s 'map(select(.event == "conn"))[-1].dst_port' "$T/truth.json")
	wait_metric 3 meshlens_tcp_connections_closed_total $(pair ::1 ::1 "$p6" outbound)
	wait_metric 1 meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$p4" inbound)
	scrape_to "$T/m"
	expect_in "$T/m" 124 meshlens_tcp_sent_bytes_total $(pair ::1 ::1 "$p6" outbound)
	expect_in "$T/m" 4568 meshlens_tcp_received_bytes_total $(pair ::1 ::1 "$p6" outbound)
	expect_in "$T/m" 4568 meshlens_tcp_sent_bytes_total $(pair ::1 ::1 "$p6" inbound)
	expect_in "$T/m" 777 meshlens_tcp_sent_bytes_total $(pair 127.0.0.1 127.0.0.1 "$p4" outbound)
	expect_in "$T/m" 8888 meshlens_tcp_received_bytes_total $(pair 127.0.0.1 127.0.0.1 "$p4" outbound)
	run grep -c ffff "$T/m"
	[ "$output" = 0 ]
	# the spec values above are the tool's counts
	[ "$(jq -s 'map(select(.event == "conn" and .dst_addr == "::1") | .client_sent) | add' "$T/truth.json")" = 124 ]
}

@test "refused connects count in failed_total (outbound) only" {
	start_metrics_daemon
	port=$(free_port)
	for _ in 1 2 3; do traffic connect 127.0.0.1 "$port"; done
	n=$(jq -s 'map(select(.event == "connect" and .outcome == "refused")) | length' "$T/truth.json")
	[ "$n" = 3 ]
	s=$(pair 127.0.0.1 127.0.0.1 "$port" outbound)
	wait_metric "$n" meshlens_tcp_connections_failed_total $s
	scrape_to "$T/m"
	expect_in "$T/m" 0 meshlens_tcp_connections_opened_total
	expect_in "$T/m" 0 meshlens_tcp_connections_closed_total
	expect_in "$T/m" 0 meshlens_tcp_sent_bytes_total $s
	expect_in "$T/m" 0 meshlens_tcp_received_bytes_total $s
	expect_in "$T/m" "$n" meshlens_tcp_connections_failed_total
	expect_in "$T/m" 0 meshlens_tcp_connections_failed_total 'direction="inbound"'
}

# Opened at establishment through the open record, or (where the live
# passes see every open connection and no open record is written, as
# --probe says) by the first live pass: 200 ms here.
@test "opened counts while the connection is open, closed when it closes" {
	echo '{"refresh_interval_ms": 200}' >"$T/c.json"
	start_metrics_daemon -c "$T/c.json"
	# held long enough for the emulated VMs of the kernel matrix (5.10 took
	# over 3 s to see the first pass there)
	traffic_bg pairs 127.0.0.1 100:200 --hold-ms 10000
	out='direction="outbound" src_ip="127.0.0.1" dst_ip="127.0.0.1"'
	in='direction="inbound" src_ip="127.0.0.1" dst_ip="127.0.0.1"'
	seen=""
	for _ in $(seq 80); do
		if scrape_to "$T/m" && [ "$(samples_in sum "$T/m" meshlens_tcp_connections_opened_total $out)" = 1 ] &&
		   [ "$(samples_in sum "$T/m" meshlens_tcp_connections_opened_total $in)" = 1 ]; then
			seen=1; break
		fi
		sleep 0.1
	done
	# the tool still holds the connection: that scrape saw it open
	kill -0 "$TOOL"
	[ -n "$seen" ] || { cat "$T/m" >&2; false; }
	expect_in "$T/m" 0 meshlens_tcp_connections_closed_total
	wait "$TOOL"
	[ "$(count_truth conn)" = 1 ]
	port=$(truth_port)
	wait_metric 1 meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$port" outbound)
	wait_metric 1 meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$port" inbound)
	scrape_to "$T/m"
	expect_in "$T/m" 1 meshlens_tcp_connections_opened_total $(pair 127.0.0.1 127.0.0.1 "$port" outbound)
	expect_in "$T/m" 1 meshlens_tcp_connections_opened_total $(pair 127.0.0.1 127.0.0.1 "$port" inbound)
	expect_in "$T/m" 2 meshlens_tcp_connections_opened_total
}

@test "bytes of an open connection advance while it is open, exact after close (no double count), past 4 GiB (no 32-bit wrap)" {
	check_live_bytes
}

@test "live counters through iter/task_file (map-element iterators refused): the same exact bytes" {
	export MESHLENS_TEST_REFUSE=ml_iter_live
	check_live_bytes
}

@test "live counters through iter/task_file, raw (bpf_rdonly_cast refused too): the same exact bytes, from the open records' bases" {
	export MESHLENS_TEST_REFUSE=ml_iter_live,ml_iter_task_file_st
	check_live_bytes
}

@test "live counters with every iterator refused: off, bytes exact at close, said by the metrics" {
	export MESHLENS_TEST_REFUSE=iter
	check_live_bytes
}

@test "retransmissions (random drops in a test namespace) equal the namespace's TcpRetransSegs" {
	ns=mlrtx$$; NETNS+=("$ns")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 10.213.0.1/32 dev lo
	retrans() { ip netns exec "$ns" nstat -az TcpRetransSegs | awk '$1 == "TcpRetransSegs" { print $2 }'; }
	start_metrics_daemon
	before=$(retrans)
	# every segment but the SYN-ACK may be lost: a SYN-ACK retransmitted
	# by the listener while the accepted socket is being made from the
	# same request on another CPU is counted by TcpRetransSegs after the
	# new socket copied the request's count (README, "Retransmits")
	ip netns exec "$ns" iptables -A OUTPUT -p tcp ! --tcp-flags SYN,ACK SYN,ACK \
		-m statistic --mode random --probability 0.1 -j DROP
	bg traffic_in_netns "$ns" --max-seconds 20 many 10.213.0.1 30 --base-bytes 20000
	tool=$BG_LAST
	# drop for up to 3 s, then let every connection finish
	for _ in $(seq 30); do kill -0 "$tool" 2>/dev/null || break; sleep 0.1; done
	ip netns exec "$ns" iptables -F OUTPUT
	wait "$tool"
	[ "$(jq -s 'map(select(.event == "conn" and .outcome == "ok")) | length' "$T/truth.json")" = 30 ]
	# no socket left that could still retransmit (TIME-WAIT sockets do not)
	for _ in $(seq 100); do
		[ -z "$(ip netns exec "$ns" ss -Htan exclude time-wait exclude listening)" ] && break
		sleep 0.1
	done
	[ -z "$(ip netns exec "$ns" ss -Htan exclude time-wait exclude listening)" ]
	delta=$(($(retrans) - before))
	echo "TcpRetransSegs delta: $delta"
	[ "$delta" -gt 0 ]
	wait_metric "$delta" meshlens_tcp_retransmits_total || {
		# what a difference would be traced with
		echo "closed: $(samples_in sum "$T/scrape.txt" meshlens_tcp_connections_closed_total)," \
			"lost records: $(samples_in sum "$T/scrape.txt" meshlens_events_lost_total)," \
			"access log: $(jq -s 'map(.retransmits) | add' "$T/access.log")"
		jq -c 'select(.retransmits > 0) | [.direction, .src_port, .state, .retransmits, .segs_out]' "$T/access.log"
		jq -c 'select(.client_handshake_retrans + .server_handshake_retrans > 0) |
			[.src_port, .client_handshake_retrans, .server_handshake_retrans]' "$T/truth.json"
		ip netns exec "$ns" nstat -a | grep -E 'Retrans|Timeouts|LossProbes'
		false
	}
	port=$(truth_port)
	scrape_to "$T/m"
	expect_in "$T/m" 30 meshlens_tcp_connections_closed_total $(pair 10.213.0.1 10.213.0.1 "$port" outbound)
	expect_in "$T/m" "$(truth_sum client_sent)" meshlens_tcp_sent_bytes_total $(pair 10.213.0.1 10.213.0.1 "$port" outbound)
	expect_in "$T/m" "$(truth_sum server_sent)" meshlens_tcp_sent_bytes_total $(pair 10.213.0.1 10.213.0.1 "$port" inbound)
	# stable: a second look a few drain intervals later agrees
	sleep 0.3
	[ "$(metric meshlens_tcp_retransmits_total)" = "$delta" ]
}

# --- self metrics --------------------------------------------------------------

@test "node-wide retransmissions (tp_btf, every socket): TcpRetransSegs - TCPRetransFail over every network namespace, never more, at most 4 + 2 % fewer" {
	check_node_retrans tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack "ml_rtx_skb(_old)?" # _old: a kernel whose tracepoint has no err (6.1)
}

@test "node-wide retransmissions through the tp_btf program of the older prototype (no err): loads, attaches, counts" {
	# on this kernel it also sees failed attempts (it cannot read err):
	# with incoming drops only, every retransmission is sent
	export MESHLENS_TEST_REFUSE=ml_rtx_skb ML_RTX_INPUT_ONLY=1
	check_node_retrans tp_btf/tcp_retransmit_skb+tp_btf/tcp_retransmit_synack ml_rtx_skb_old
}

@test "node-wide retransmissions through the classic tracepoints (where tp_btf is refused): the same counts" {
	export MESHLENS_TEST_REFUSE=tp_btf
	check_node_retrans tracepoint/tcp/tcp_retransmit_skb+tracepoint/tcp/tcp_retransmit_synack
}

@test "self metrics: events, lost events, hook per feature, build info, series, scrape duration" {
	start_metrics_daemon
	traffic many 127.0.0.1 5
	wait_metric 5 meshlens_tcp_connections_closed_total 'direction="inbound"'
	scrape_to "$T/m"
	# events by source: present and counting; lost events: present and 0
	[ "$(samples_in count "$T/m" meshlens_events_total)" -ge 1 ]
	grep -qE '^meshlens_events_total\{source="[^"]+"\} ' "$T/m"
	[ "$(samples_in sum "$T/m" meshlens_events_total)" -gt 0 ]
	[ "$(samples_in count "$T/m" meshlens_events_lost_total)" -ge 1 ]
	grep -qE '^meshlens_events_lost_total\{source="[^"]+"\} ' "$T/m"
	[ -z "$(awk '/^meshlens_events_lost_total[{ ]/ && $NF != 0' "$T/m")" ]
	# runs the kernel skipped (a program nested in itself): what bpftool
	# says of this daemon's programs
	[ "$(samples_in count "$T/m" meshlens_events_lost_total 'source="recursion"')" = 1 ]
	expect_in "$T/m" "$(bpftool prog show -j | jq '[.[] | select(.name | startswith("ml_")) | .recursion_misses // 0] | add // 0')" \
		meshlens_events_lost_total 'source="recursion"'
	# every feature --probe names has its hook_info series, value 1
	run "$MESHLENS" --probe
	[ "$status" = 0 ]
	while read -r feature state hook _; do
		expect_in "$T/m" 1 meshlens_feature_info "feature=\"$feature\"" "state=\"$state\"" \
			"hook=\"${hook/#-/none}\""
		# a feature that is off (drops without --drops) has no hook serving it
		if [ "$state" = off ]; then
			[ "$(samples_in count "$T/m" meshlens_hook_info "feature=\"$feature\"")" = 0 ]
			continue
		fi
		expect_in "$T/m" 1 meshlens_hook_info "feature=\"$feature\"" "hook=\"$hook\""
		[ "$(samples_in count "$T/m" meshlens_hook_info "feature=\"$feature\"")" = 1 ]
	done <<<"$output"
	[ "$(samples_in count "$T/m" meshlens_feature_info)" = 6 ]
	[ -z "$(awk '/^meshlens_hook_info[{ ]/ && $NF != 1' "$T/m")" ]
	# build info carries the version -V prints
	version=$("$MESHLENS" -V | awk '{ print $NF }')
	expect_in "$T/m" 1 meshlens_build_info "version=\"$version\""
	[ "$(samples_in count "$T/m" meshlens_build_info)" = 1 ]
	# series gauge(s) and the scrape duration gauge
	grep -qE '^# TYPE meshlens_series[a-z_]* gauge$' "$T/m"
	grep -qE '^meshlens_series[a-z_]*(\{[^}]*\})? [0-9]' "$T/m"
	grep -qx '# TYPE meshlens_scrape_duration_seconds gauge' "$T/m"
	d=$(awk '$1 == "meshlens_scrape_duration_seconds" { print $2 }' "$T/m")
	awk -v d="$d" 'BEGIN { exit !(d != "" && d + 0 >= 0 && d + 0 < 5) }'
}

# --- HTTP behaviour --------------------------------------------------------------

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "/healthz, landing page, 404, and malformed requests do not hurt the daemon" {
	start_metrics_daemon
	# healthy as soon as ready was printed
	[ "$(curl -s --max-time 5 -o "$T/h" -w '%{http_code}' "$MURL/healthz")" = 200 ]
	[ "$(tr -d '\r\n' <"$T/h")" = ok ]
	# landing page links to both endpoints
	[[ "$(curl -s --max-time 5 -o "$T/index" -w '%{http_code} %{content_type}' "$MURL/")" == "200 text/html"* ]]
	grep -qiE "href=[\"']?[^\"' >]*/?metrics[\"' >]" "$T/index"
	grep -qiE "href=[\"']?[^\"' >]*/?healthz[\"' >]" "$T/index"
	[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$MURL/nope")" = 404 ]
	# garbage gets an answer or a closed connection, never a hang
	run timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "GARBAGE\r\n\r\n" >&3; cat <&3' _ "$MPORT"
	echo "garbage request: status $status, answer: $output"
	[ "$status" != 124 ]
	run timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; head -c 20000 /dev/urandom >&3; cat <&3' _ "$MPORT"
	[ "$status" != 124 ]
	run timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "GET /metrics HTTP/1.1\r\nHost: x" >&3; exec 3>&-' _ "$MPORT"
	[ "$status" = 0 ]
	# an idle client with half a request does not block the others
	exec {idle}<>"/dev/tcp/127.0.0.1/$MPORT"
	printf 'GET /metrics HTTP/1.1\r\n' >&"$idle"
	kill -0 "$DAEMON_PID"
	[ "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$MURL/healthz")" = 200 ]
	scrape_to "$T/m"
	exec {idle}>&-
	# and it keeps logging and counting
	traffic many 127.0.0.1 3
	wait_records 6
	check_conns
	wait_metric 3 meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$(truth_port)" outbound)
	kill -0 "$DAEMON_PID"
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "gzip: the compressed body is the plain body" {
	start_metrics_daemon
	traffic many 127.0.0.1 10
	wait_metric 10 meshlens_tcp_connections_closed_total 'direction="inbound"'
	scrape_to "$T/plain"
	scrape_to "$T/body.gz" -H 'Accept-Encoding: gzip' -D "$T/headers"
	[ "$(header "$T/headers" content-encoding)" = gzip ]
	[ "$(header "$T/headers" content-type)" = "text/plain; version=0.0.4; charset=utf-8" ]
	gunzip -c <"$T/body.gz" >"$T/unzipped"
	# values that change per scrape (the scrape's own duration/count) are blanked
	norm() { awk '!/^#/ && $1 ~ /scrape|^process_/ { $NF = "X" } { print }' "$1"; }
	diff <(norm "$T/plain") <(norm "$T/unzipped")
	promtool_ok "$T/unzipped"
	# curl's own decoding agrees too
	scrape_to "$T/compressed" --compressed
	diff <(norm "$T/plain") <(norm "$T/compressed")
	# a client that does not accept gzip never gets it
	curl -sS --max-time 5 -D "$T/h2" -o /dev/null "$MURL/metrics"
	[ -z "$(header "$T/h2" content-encoding)" ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "50 concurrent scrapes while traffic flows: all 200, and no record lost" {
	start_metrics_daemon
	traffic_bg many 127.0.0.1 300 --interval-ms 3
	pids=()
	for i in $(seq 50); do
		(for _ in 1 2 3 4; do
			curl -s --max-time 10 -o /dev/null -w '%{http_code} %{size_download}\n' "$MURL/metrics"
		done >"$T/codes.$i") &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p"; done
	wait "$TOOL"
	cat "$T"/codes.* >"$T/codes"
	[ "$(wc -l <"$T/codes")" = 200 ]
	[ "$(awk '$1 == 200 && $2 > 0' "$T/codes" | wc -l)" = 200 ] || { sort "$T/codes" | uniq -c >&2; false; }
	n=$(count_truth conn)
	[ "$n" = 300 ]
	wait_records $((2 * n))
	check_conns
	wait_metric "$n" meshlens_tcp_connections_closed_total $(pair 127.0.0.1 127.0.0.1 "$(truth_port)" outbound)
	wait_metric "$(truth_sum server_sent)" meshlens_tcp_sent_bytes_total 'direction="inbound"'
}

# --- start-up -----------------------------------------------------------------------

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "-m off serves nothing" {
	default_free=""
	[ -z "$(ss -Htan '( sport = :2112 )')" ] && default_free=1
	start_daemon	# passes -m off
	# the daemon listens on no TCP port at all
	[ -z "$(ss -Htlnp | grep "pid=$DAEMON_PID,")" ]
	if [ -n "$default_free" ]; then
		run curl -s --max-time 5 http://127.0.0.1:2112/metrics
		[ "$status" = 7 ]	# connection refused
	fi
	traffic many 127.0.0.1 2
	wait_records 4
	check_conns
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "metrics port already in use: exit 2, one line naming the address, nothing attached" {
	port=$(free_port)
	bg "$MLTRAFFIC" serve 127.0.0.1 "$port" >"$T/serve.json"
	for _ in $(seq 50); do grep -q listening "$T/serve.json" && break; sleep 0.1; done
	[ "$(jq -r .port "$T/serve.json")" = "$port" ]
	run timeout 10 "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access.log" -m "127.0.0.1:$port"
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" == *"127.0.0.1:$port"* ]]
	[ -z "$(cgroup_attached "$CG")" ]
	# the other listener is untouched
	[ -n "$(ss -Htln "( sport = :$port )")" ]
}

# --- a real Prometheus ---------------------------------------------------------------

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "a real Prometheus server scrapes meshlens" {
	start_metrics_daemon
	start_prometheus
	traffic many 127.0.0.1 20 --base-bytes 300
	n=$(count_truth conn)
	got=""
	for _ in $(seq 100); do
		got=$(prom_query 'sum(meshlens_tcp_connections_closed_total{direction="outbound"})')
		[ "$got" = "$n" ] && break
		sleep 0.2
	done
	[ "$got" = "$n" ] || { echo "Prometheus says '$got', want $n" >&2; cat "$T/prometheus.log" >&2; false; }
	[ "$(prom_query 'up{job="meshlens"}')" = 1 ]
	[ "$(prom_query 'sum(meshlens_tcp_received_bytes_total{direction="inbound"})')" = "$(truth_sum server_received)" ]
	[ "$(prom_query "sum(meshlens_tcp_connections_opened_total{direction=\"outbound\",dst_port=\"$(truth_port)\"})")" = "$n" ]
	# Prometheus found nothing to complain about in the scrapes
	run grep -iE 'level=(warn|error).*(scrape|meshlens)' "$T/prometheus.log"
	[ "$status" = 1 ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "duration, smoothed-RTT and handshake histograms: every closed connection in the bucket of its access-log values, none shorter than the traffic tool held it" {
	start_metrics_daemon
	traffic pairs 127.0.0.1 10:10 20:20 30:30 --hold-ms 300
	traffic many 127.0.0.1 5
	n=$(count_truth conn)
	[ "$n" = 8 ]
	wait_records $((2 * n))
	wait_metric "$n" meshlens_tcp_connections_closed_total 'direction="inbound"'
	scrape_to "$T/m"
	for dir in outbound inbound; do
		for h in "connection_duration_seconds duration_ns 1e9 0.001 0.005 0.01 0.05 0.1 0.5 1 5 10 60 300 3600" \
			 "srtt_seconds srtt_us 1e6 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 1" \
			 "handshake_seconds handshake_us 1e6 5e-05 0.0001 0.00025 0.0005 0.001 0.0025 0.01 0.05 0.25 1 3 7"; do
			read -r name key scale bounds <<<"$h"
			for le in $bounds +Inf; do
				# the access log's values of this direction at or below the bound
				want=$(jq -s --arg d "$dir" --arg k "$key" --argjson s "$scale" --arg le "$le" '
				  map(select(.direction == $d and .success and has($k)) | .[$k] / $s)
				  | map(select($le == "+Inf" or . <= ($le | tonumber))) | length' "$T/access.log")
				got=$(samples_in sum "$T/m" "meshlens_tcp_${name}_bucket" "direction=\"$dir\"" "le=\"$le\"")
				[ "$got" = "$want" ] || { echo "$name{$dir,le=$le}: $got, want $want" >&2; false; }
			done
			# every connection has a duration and an srtt; the handshake
			# too, but for a retransmitted SYN-ACK (none on loopback)
			[ "$(samples_in sum "$T/m" "meshlens_tcp_${name}_count" "direction=\"$dir\"")" = "$n" ]
		done
	done
	# the three held 300 ms are over 0.1 s, the five others not
	held=$(samples_in sum "$T/m" meshlens_tcp_connection_duration_seconds_bucket 'direction="outbound"' 'le="0.1"')
	[ "$held" = 5 ]
	promtool_ok "$T/m"
}
