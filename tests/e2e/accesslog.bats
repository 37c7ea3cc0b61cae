#!/usr/bin/env bats
# Access log end to end: the real daemon on the real kernel, traffic from
# the traffic tool inside a private cgroup, exact values compared with the
# tool's own counts.

load helpers
load accesslog_helpers

setup() { ml_setup; }
teardown() { ml_teardown; }

@test "IPv4: 40 connections, distinct byte counts both ways, exact payload bytes" {
	start_daemon
	traffic many 127.0.0.1 40 --base-bytes 1000
	[ "$(count_truth conn)" = 40 ]
	wait_records 80
	check_conns
	[ "$(wc -l <"$T/access.log")" = 80 ]
}

@test "IPv6 and v4-mapped IPv6 sockets" {
	start_daemon
	traffic pairs ::1 123:4567 0:1 1:0
	traffic pairs ::ffff:127.0.0.1 777:8888
	wait_records 8
	check_conns
	[ "$(jq -r 'select(.dst_addr == "::1") | .family' "$T/access.log" | sort -u)" = ipv6 ]
	[ "$(jq -r 'select(.dst_port == '"$(jq -s 'map(select(.event=="conn"))[-1].dst_port' "$T/truth.json")"') | .family + " " + .src_addr' "$T/access.log" | sort -u)" = "ipv4 127.0.0.1" ]
}

@test "server closes first: bytes stay exact on the passive-close side" {
	start_daemon
	traffic pairs 127.0.0.1 100:200 4096:1 65536:65536 --close server
	wait_records 6
	check_conns
}

@test "one large transfer: 48 MB up, 24 MB down, exact" {
	start_daemon
	traffic pairs 127.0.0.1 48000000:24000000
	wait_records 2
	check_conns
}

@test "record schema: every key, types, times and TCP info" {
	start_daemon
	traffic pairs 127.0.0.1 1000:2000 --hold-ms 50
	wait_records 2
	run jq -e -s '
	  length == 2 and all(.[];
	    (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$"))
	    and (.start_time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$"))
	    and (.duration_ns | type == "number" and . >= 50000000 and . < 5000000000)
	    and (.success == true) and (has("failure") | not)
	    and (.srtt_us | type == "number" and . > 0 and . < 100000)
	    and (.min_rtt_us | type == "number" and . > 0 and . <= 100000)
	    and .mss > 0 and .retransmits == 0 and .segs_in > 0 and .segs_out > 0
	    and .lost == 0 and (.state | type == "string")
	    and .family == "ipv4" and .src_addr == "127.0.0.1" and .dst_addr == "127.0.0.1")' \
	    "$T/access.log"
	[ "$status" = 0 ] || { cat "$T/access.log"; false; }
	# start_time + duration_ns == time, to the microsecond
	run jq -r '[(.start_time | sub("\\.[0-9]+Z$"; "Z") | fromdate) * 1000000
	             + (.start_time | capture("\\.(?<us>[0-9]+)Z$").us | tonumber),
	            (.time | sub("\\.[0-9]+Z$"; "Z") | fromdate) * 1000000
	             + (.time | capture("\\.(?<us>[0-9]+)Z$").us | tonumber),
	            (.duration_ns / 1000 | floor)]
	           | (.[1] - .[0] - .[2]) | fabs <= 1' "$T/access.log"
	[ "$output" = "$(printf 'true\ntrue')" ]
	# the close time is now, not at boot: within a minute of the wall clock
	now=$(date +%s)
	run jq -r '.time | sub("\\.[0-9]+Z$"; "Z") | fromdate' "$T/access.log"
	[ -n "$output" ]
	for t in $output; do
		[ $((now - t)) -lt 60 ]
		[ $((now - t)) -ge 0 ]
	done
}

@test "srtt_us is the real smoothed RTT, not the kernel's value << 3" {
	start_daemon
	traffic pairs 127.0.0.1 100:100 100:100 100:100 100:100 100:100 100:100 100:100 100:100 100:100
	wait_records 18
	# compare with the kernel's own tcpi_rtt the tool read before closing
	# (both unshifted us); the FIN exchange may still move srtt a little
	# (and a lot, now and then, in an emulated VM): the median of
	# srtt_us / tcpi_rtt is within 2x, which an 8x-inflated value is not
	run jq -s -e --slurpfile gt "$T/truth.json" '
	  [ $gt[] | select(.event == "conn") ] as $c
	  | [ .[] | select(.direction == "outbound") | . as $r
	      | ($c | map(select(.src_port == $r.src_port))[0].client_rtt_us) as $rtt
	      | ($r.srtt_us + 10) / ($rtt + 10) ] | sort
	  | length == 9 and .[4] >= 0.5 and .[4] <= 2' "$T/access.log"
	[ "$status" = 0 ] || { cat "$T/access.log" "$T/truth.json"; false; }
}

@test "handshake_us: outbound within the client's connect() call and no shorter than the kernel's SYN round trip; inbound the kernel's SYN-ACK round trip exactly" {
	start_daemon
	traffic pairs 127.0.0.1 100:100 100:100 100:100 100:100 100:100 100:100 100:100 100:100
	traffic pairs ::1 100:100 100:100
	wait_records 20
	check_handshakes 10
}

@test "TCP health at close (random drops in a test namespace): every TCP field of the client's record equals the kernel's TCP_INFO of its closed socket" {
	ns=mlhl$$; NETNS+=("$ns")
	ip netns add "$ns"
	# 1500-byte packets, one segment each (no GSO): 14 a connection each
	# way, so the drops hit data
	ip -n "$ns" link set lo mtu 1500 gso_max_segs 1 up
	ip -n "$ns" addr add 10.214.0.1/32 dev lo
	start_metrics_daemon
	scrape_to "$T/m0" # before any connection: the RTO family is there where the kernel counts RTOs
	# on arrival: a packet refused on its way out is only sent later, not lost
	ip netns exec "$ns" iptables -A INPUT -p tcp -m statistic --mode random --probability 0.1 -j DROP
	traffic_in_netns "$ns" --max-seconds 90 pairs 10.214.0.1 --final-info \
		20000:20000 20000:20000 20000:20000 20000:20000 20000:20000 20000:20000 20000:20000 20000:20000
	wait_records 16
	check_health 8
	check_rto_metric
	# the kernel's own answer: its TCP_INFO has tcpi_total_rto or not
	if [ "$(jq -s 'map(select(.event == "conn" and (.client_info | has("total_rto")))) | length' "$T/truth.json")" -gt 0 ]; then
		grep -q '^# TYPE meshlens_tcp_rto_timeouts_total counter$' "$T/m0"
	else
		run ! grep -q 'meshlens_tcp_rto_timeouts_total' "$T/m0"
	fi
}

@test "refused connection: success false, failure refused" {
	start_daemon
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	traffic connect 127.0.0.1 "$port"
	[ "$(jq -r .outcome "$T/truth.json")" = refused ]
	wait_records 1
	run jq -c '[.success, .failure, .direction, .dst_addr, .dst_port, .state, .sent_bytes, .received_bytes, has("handshake_us")]' "$T/access.log"
	[ "$output" = "[false,\"refused\",\"outbound\",\"127.0.0.1\",$port,\"SYN_SENT\",0,0,false]" ]
	[ "$(jq .src_port "$T/access.log")" = "$(jq .src_port "$T/truth.json")" ]
}

@test "timed-out connection (SYNs dropped by iptables in a test namespace): failure timeout" {
	ns=mlto$$; NETNS+=("$ns")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add 10.213.0.1/32 dev lo
	ip netns exec "$ns" iptables -A INPUT -p tcp --syn --dport 8080 -j DROP
	start_daemon
	traffic_in_netns "$ns" --syncnt 1 connect 10.213.0.1 8080
	[ "$(jq -r .outcome "$T/truth.json")" = timeout ]
	dropped=$(ip netns exec "$ns" iptables -L INPUT -v -x -n | awk '/DROP/ { print $1 }')
	[ "$dropped" -ge 2 ]
	wait_records 1
	# every SYN the socket sent was dropped: iptables' count is the ground truth
	run jq -c '[.success, .failure, .dst_addr, .dst_port, .state, .segs_out, .retransmits]' "$T/access.log"
	[ "$output" = "[false,\"timeout\",\"10.213.0.1\",8080,\"SYN_SENT\",$dropped,$((dropped - 1))]" ]
}

@test "locally failing connect (no route in a namespace with only lo): failure unreachable, with the errno where fexit serves" {
	check_local_failure
}

@test "locally failing connect through cgroup/sock_release (fexit refused): failure unreachable, no errno" {
	export MESHLENS_TEST_REFUSE=fexit
	check_local_failure
}

@test "locally failing connect with every connect-failure hook refused: not logged; connections still are" {
	export MESHLENS_TEST_REFUSE=fexit,cgroup/sock_release
	check_local_failure
}

@test "processes outside the observed cgroup produce no records" {
	start_daemon
	"$MLTRAFFIC" many 127.0.0.1 10 >"$T/outside.json"
	traffic many 127.0.0.1 3
	wait_records 6
	sleep 0.3   # a late record from outside would have arrived by now (drain is 50 ms)
	[ "$(wc -l <"$T/access.log")" = 6 ]
	check_conns
	outside_ports=$(jq -r '.src_port' "$T/outside.json" | sort)
	for p in $outside_ports; do
		run ! jq -e --argjson p "$p" 'select(.src_port == $p)' "$T/access.log"
	done
}

@test "SIGTERM while traffic flows: every connection closed before the signal is logged" {
	start_daemon
	"$MLTRAFFIC" --cgroup "$CG" many 127.0.0.1 400 --interval-ms 5 >"$T/truth.json" &
	tool=$!
	sleep 0.7
	cp "$T/truth.json" "$T/before.json"
	stop_daemon
	wait "$tool"
	n=$(jq -s 'map(select(.event == "conn")) | length' "$T/before.json")
	[ "$n" -gt 20 ]
	cp "$T/before.json" "$T/truth.json"
	check_conns
	grep -q 'exiting on signal 15' "$T/daemon.err"
}

@test "programs stay attached through pinned links after exit; --detach removes everything" {
	start_daemon
	# sock_release too where it serves connect failures (no trampolines)
	n=3
	grep -q 'connect-failures=cgroup/sock_release' "$T/daemon.err" && n=4
	cgroup_attached "$CG"
	[ "$(cgroup_attached "$CG" | wc -l)" = "$n" ]
	stop_daemon
	# still observing: what closes now waits in the pinned ringbuf
	[ "$(cgroup_attached "$CG" | wc -l)" = "$n" ]
	[ -e "$PIN/events" ]
	[ -e "$PIN/sk_states" ]
	run "$MESHLENS" --detach --pin-path "$PIN"
	[ "$status" = 0 ]
	[ -z "$(cgroup_attached "$CG")" ]
	[ ! -e "$PIN" ]
}

@test "SIGTERM and start while connections open and close: every record exactly once" {
	restart_during_traffic TERM
}

@test "kill -9 and start while connections open and close: every record exactly once" {
	restart_during_traffic KILL
}

@test "no reader wake-up per record: 1000 records cost the daemon few context switches" {
	start_daemon
	before=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$DAEMON_PID/status")
	traffic many 127.0.0.1 500 --quiet
	wait_records 1000
	after=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$DAEMON_PID/status")
	echo "daemon woke $((after - before)) times for 1000 records"
	# woken per record it would be >= 1000; the drain timer alone wakes it
	# once per 50 ms while the 500 connections run
	[ $((after - before)) -lt 200 ]
}

# host-only: needs live passes that read the socket storage (iter/task_file_st here);
# not yet run on the kernel matrix, where 5.10's raw pass writes no interim lines
@test "interim lines (log_interval_s): one per second of an open connection, cumulative and per-interval bytes; the intervals add up to the one close line" {
	echo '{"refresh_interval_ms": 200, "log_interval_s": 1}' >"$T/c.json"
	start_daemon -c "$T/c.json"
	traffic pairs 127.0.0.1 1000:2000 --hold-ms 3500
	wait_for '[ "$(jq -s "map(select(has(\"type\") | not)) | length" "$T/access.log")" = 2 ]'
	cat "$T/access.log"
	for dir in outbound inbound; do
		if [ "$dir" = outbound ]; then sent=client_sent recv=client_received; else sent=server_sent recv=server_received; fi
		jq -e -s --arg d "$dir" --argjson s "$(truth_sum "$sent")" --argjson r "$(truth_sum "$recv")" '
		  map(select(.direction == $d)) as $l
		  | ($l | map(select(has("type") | not))) as $close
		  | ($l | map(select(.type == "interim"))) as $iv
		  | ($close | length) == 1 and ($iv | length) >= 2 and ($iv | length) <= 4
		  and $close[0].sent_bytes == $s and $close[0].received_bytes == $r
		  and ($iv | map(.interval_sent_bytes) | add) == $s
		  and ($iv | map(.interval_received_bytes) | add) == $r
		  and ($iv | map(.interval_retransmits) | add) == $close[0].retransmits
		  and $iv[-1].sent_bytes == $s and $iv[-1].received_bytes == $r
		  and ([range(0; $iv | length)] | all(. as $k | $iv[$k].duration_ns >= ($k + 1) * 1000000000))
		  and ($iv | all(.sock_cookie == $close[0].sock_cookie and .success))' "$T/access.log" >/dev/null ||
			{ echo "$dir: interim lines do not add up" >&2; false; }
	done
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "interim lines where live passes read only raw counters: said once at start, none written, the close lines unchanged" {
	echo '{"refresh_interval_ms": 200, "log_interval_s": 1}' >"$T/c.json"
	MESHLENS_TEST_REFUSE=ml_iter_live,ml_iter_task_file_st start_daemon -c "$T/c.json"
	grep -q 'log_interval_s: no interim lines on this kernel' "$T/daemon.err"
	traffic pairs 127.0.0.1 1000:2000 --hold-ms 1500
	wait_records 2
	[ "$(wc -l <"$T/access.log")" = 2 ]
	run ! grep -q interim "$T/access.log"
	check_conns
}
