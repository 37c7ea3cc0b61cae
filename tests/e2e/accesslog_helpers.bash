# Helpers of tests/e2e/accesslog.bats.
# shellcheck shell=bash
# bats sets status, output and lines (run):
# shellcheck disable=SC2154

# check_local_failure: a connect() that fails before any SYN (no route in a
# namespace with only lo), through whichever hook --probe says serves
# connect failures under this environment: fexit has the exact errno,
# sock_release reports it at close() without one, off logs nothing
check_local_failure() {
	local hook
	hook=$("$MESHLENS" --probe | awk '$1 == "connect-failures" { print $3 }')
	echo "connect-failures: $hook"
	ns=mlnr$$; NETNS+=("$ns")
	ip netns add "$ns"
	# (with metadata, every record names its socket's cgroup)
	echo '{"workloads": []}' >"$T/md.json"
	start_daemon --metadata "$T/md.json"
	grep -q "connect-failures=${hook/#-/off}" "$T/daemon.err"
	traffic_in_netns "$ns" connect 198.51.100.7 443
	[ "$(jq -r .outcome "$T/truth.json")" = unreachable ]
	# and one connection that works, after it: it is logged either way
	traffic many 127.0.0.1 1
	# a failure before any SYN too: the cgroup of the task that saw it
	wait_records 2
	[ "$(jq -s --arg cg "$CGREL" 'map(select(.cgroup != $cg)) | length' "$T/access.log")" = 0 ]
	case $hook in
	fexit/*)
		wait_records 3
		run jq -c 'select(.success == false) | [.failure, .error, .direction, .dst_addr, .dst_port, .family, .sent_bytes]' "$T/access.log"
		[ "$output" = '["unreachable","ENETUNREACH","outbound","198.51.100.7",443,"ipv4",0]' ] ;;
	cgroup/sock_release)
		wait_records 3
		run jq -c 'select(.success == false) | [.failure, has("error"), .direction, .dst_addr, .dst_port, .family, .sent_bytes]' "$T/access.log"
		[ "$output" = '["unreachable",false,"outbound","198.51.100.7",443,"ipv4",0]' ] ;;
	-)
		wait_records 2
		[ "$(jq -s 'map(select(.success == false)) | length' "$T/access.log")" = 0 ] ;;
	*) echo "unknown hook $hook" >&2; false ;;
	esac
}

# restart_during_traffic SIGNAL: connections open and close continuously
# while the daemon is stopped with SIGNAL and started again
restart_during_traffic() {
	start_daemon
	"$MLTRAFFIC" --cgroup "$CG" --max-seconds 60 many 127.0.0.1 300 --interval-ms 5 >"$T/truth.json" &
	tool=$!
	# one connection open across the restart, closed while no daemon runs
	"$MLTRAFFIC" --cgroup "$CG" pairs 127.0.0.1 3333:4444 --hold-ms 900 >"$T/long.json" &
	long=$!
	sleep 0.5
	kill "-$1" "$DAEMON_PID"
	wait "$DAEMON_PID" || true
	DAEMON_PID=""
	sleep 0.8   # connections keep closing while no daemon runs
	start_daemon
	wait "$tool"
	wait "$long"
	cat "$T/long.json" >>"$T/truth.json"
	wait_records 602
	sleep 0.3
	check_conns   # every connection: exactly one record per end, exact bytes
	[ "$(wc -l <"$T/access.log")" = 602 ]
	# the long one kept its true start and duration
	lport=$(jq .src_port "$T/long.json")
	run jq -s --argjson p "$lport" 'map(select(.src_port == $p and .direction == "outbound"))[0].duration_ns' "$T/access.log"
	[ "$output" -ge 900000000 ]
}

# check_handshakes N: each of the N connections the traffic tool made has
# a handshake_us on both records, against the tool's ground truth — the
# client's: at most its connect() call (meshlens's span starts inside it
# and ends before it returns), at least the kernel's own SYN round trip
# (tcpi_rtt read right after connect(), us, each end truncated: less 1);
# the server's: exactly the kernel's SYN-ACK round trip (tcpi_rtt right
# after accept(), before any byte was sent), and no key where the SYN-ACK
# was retransmitted
check_handshakes() {
	local n=$1
	run jq -n -e --slurpfile gt "$T/truth.json" --slurpfile al "$T/access.log" --argjson n "$n" '
	  [ $gt[] | select(.event == "conn") ] as $c
	  | ($c | length) == $n
	  and all($c[]; . as $t
	      | [ $al[] | select(.src_addr == $t.src_addr and .src_port == $t.src_port) ] as $r
	      | ($r | length) == 2
	      and ($r | map(select(.direction == "outbound"))[0]
	           | .handshake_us <= ($t.client_connect_ns / 1000 | floor)
	             and .handshake_us >= $t.client_handshake_rtt_us - 1)
	      and ($r | map(select(.direction == "inbound"))[0]
	           | if $t.server_handshake_retrans == 0
	             then .handshake_us == $t.server_handshake_rtt_us
	             else has("handshake_us") | not end))'
	[ "$status" = 0 ] || { cat "$T/access.log" "$T/truth.json"; false; }
}

# check_health N: the N connections of a `pairs --final-info` run — each
# client's record carries exactly what its kernel's TCP_INFO said once the
# socket was closed (the classic fields and the TCP health ones, each key
# present in the record exactly when the traffic tool's kernel answer had
# it); the RTO time may only be less (the kernel counts a recovery still
# going at the reading up to then), and segs_in may be one or two short:
# seen once on 6.12 in qemu (28 in the record, 29 in TCP_INFO, every other
# field equal) — most likely a segment another CPU had matched to the
# socket before the FIN's time-wait swap, counted after the close on a
# socket that then drops it.
# And the drops did hit data.
check_health() {
	local n=$1
	run jq -n -e --slurpfile gt "$T/truth.json" --slurpfile al "$T/access.log" --argjson n "$n" '
	  [ "bytes_retrans", "dsack_dups", "reord_seen", "rcv_ooopack", "delivered_ce", "snd_cwnd",
	    "snd_ssthresh", "delivery_rate", "total_rto", "total_rto_recoveries",
	    "total_rto_time_ms" ] as $health
	  | [ $gt[] | select(.event == "conn") ] as $c
	  | ($c | length) == $n
	  and all($c[]; . as $t
	      | ($al | map(select(.direction == "outbound" and .src_port == $t.src_port))) as $r
	      | ($r | length) == 1
	      and all($t.client_info | to_entries[]; . as $f
	          | if $f.key == "total_rto_time_ms" then $r[0][$f.key] <= $f.value
	            elif $f.key == "segs_in" then $r[0][$f.key] <= $f.value and $f.value - $r[0][$f.key] <= 2
	            else $r[0][$f.key] == $f.value end)
	      and all($health[]; . as $k | ($r[0] | has($k)) == ($t.client_info | has($k))))
	  and ([ $c[].client_info.bytes_retrans ] | add) > 0'
	[ "$status" = 0 ] || { cat "$T/access.log" "$T/truth.json"; false; }
}

# check_rto_metric: meshlens_tcp_rto_timeouts_total is, per direction, the
# sum of the access log's total_rto (the clients' checked against their
# kernel by check_health); where the kernel keeps no RTO count (before
# 6.7) neither the key nor the family exists
check_rto_metric() {
	local dir want
	if [ "$(jq -s 'map(select(has("total_rto"))) | length' "$T/access.log")" = 0 ]; then
		scrape_to "$T/m"
		run ! grep -q '^meshlens_tcp_rto_timeouts_total' "$T/m"
		return
	fi
	for dir in outbound inbound; do
		want=$(jq -s --arg d "$dir" 'map(select(.direction == $d) | .total_rto) | add' "$T/access.log")
		wait_metric "$want" meshlens_tcp_rto_timeouts_total "direction=\"$dir\""
	done
}
