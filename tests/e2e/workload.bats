#!/usr/bin/env bats
# Workload identity end to end: the real daemon with --metadata, loopback
# traffic inside a private cgroup. 127.0.0.1 names the peer end by
# address, the test cgroup names the socket's own end; the file is
# rewritten the way config writers do it (temp file + rename) under load.

load helpers
load workload_helpers

setup() { ml_setup; }
teardown() { ml_teardown; }

@test "both ends named, cgroup key; atomic rewrite applies without restart or loss" {
	write_md wa wb
	start_daemon --metadata "$T/md.json"
	traffic pairs 127.0.0.1 100:200 300:400
	wait_records 4
	names_ok wa wb <"$T/access.log"

	# rewrite while connections keep closing
	traffic many 127.0.0.1 40 --base-bytes 10 --interval-ms 5 &
	tpid=$!
	sleep 0.1
	write_md wa2 wb2
	wait "$tpid"
	wait_err "metadata reloaded from $T/md.json"
	traffic pairs 127.0.0.1 500:600 700:800
	wait_records 88
	check_conns
	[ "$(wc -l <"$T/access.log")" = 88 ]
	# every record is named wholly by one table or the other
	jq -e -s 'all(.[]; (.src_workload + "/" + .dst_workload) as $p
	            | [$p] | inside(["wa/wb", "wb/wa", "wa2/wb2", "wb2/wa2"]))' "$T/access.log"
	# the last traffic got the new names
	tail -n 4 "$T/access.log" | names_ok wa2 wb2
	# 127.0.0.1 itself beats 127.0.0.0/8 (the next test: another 127.x is "wide")
	[ "$(grep -c '"src_workload":"wide"' "$T/access.log")" = 0 ]
	run ! grep -q "reloading metadata" "$T/daemon.err"
}

@test "a cgroup made after start (a new pod): named from its first connection, the tree walked between records" {
	write_md wa wb
	start_daemon --metadata "$T/md.json"
	mkdir "$CG/pod-late"
	# the walk at start is at least a second old: one walk a second at most
	sleep 1.1
	"$MLTRAFFIC" --cgroup "$CG/pod-late" pairs 127.0.0.1 100:200 >>"$T/truth.json"
	wait_records 2
	check_conns
	# named by its nearest named ancestor, the test cgroup (wb)
	jq -e -s --arg cg "$CGREL/pod-late" 'length == 2 and all(.[]; .cgroup == $cg)' "$T/access.log"
	CGREL=$CGREL/pod-late names_ok wa wb <"$T/access.log"
}

@test "failed connection: the socket's own end named, no failure of naming" {
	write_md wa wb
	start_daemon --metadata "$T/md.json"
	traffic connect 127.0.0.2 1 || true
	wait_records 1
	run jq -e -s 'length == 1 and .[0].success == false and .[0].direction == "outbound"
	              and .[0].src_workload == "wb" and .[0].dst_workload == "wide"
	              and .[0].dst_namespace == "ns-wide" and (.[0] | has("dst_service") | not)
	              and .[0].cgroup == "'"$CGREL"'"' "$T/access.log"
	[ "$status" = 0 ] || { cat "$T/access.log"; false; }
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "bad metadata file at start: exit 2, one line naming the file" {
	echo '{"workloads": [{"ips": ["10.0.0.300"], "workload": "x"}]}' >"$T/md.json"
	run "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access.log" -m off --metadata "$T/md.json"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" == *"$T/md.json"*"10.0.0.300"* ]]
	run "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access.log" -m off --metadata "$T/none.json"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" == *"$T/none.json"* ]]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "bad metadata file at reload: old names stay, one line on stderr" {
	write_md wa wb
	start_daemon --metadata "$T/md.json"
	echo '{"workloads": [' >"$T/md.json.tmp"
	mv "$T/md.json.tmp" "$T/md.json"
	wait_err "reloading metadata"
	[ "$(grep -c "reloading metadata: $T/md.json: not valid JSON" "$T/daemon.err")" = 1 ]
	traffic pairs 127.0.0.1 100:200
	wait_records 2
	names_ok wa wb <"$T/access.log"
	# SIGHUP reloads too (the file is still bad: a second line), then a good file applies
	kill -HUP "$DAEMON_PID"
	wait_err "reloading metadata" 2
	write_md wa3 wb3
	wait_err "metadata reloaded"
	traffic pairs 127.0.0.1 300:400
	wait_records 4
	tail -n 2 "$T/access.log" | names_ok wa3 wb3
	check_conns
	[ "$(grep -c "reloading metadata" "$T/daemon.err")" = 2 ]
	[ "$(grep -c "metadata" "$T/daemon.err")" = 3 ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "a burst of reloads says at most a line a second, and the last word is always said" {
	write_md wa wb
	start_daemon --metadata "$T/md.json"
	for i in $(seq 30); do
		write_md "wa$i" "wb$i"
		kill -HUP "$DAEMON_PID"
	done
	# the last file lists an address twice: its warning must be said
	printf '{"workloads":[{"ips":["10.9.0.1"],"workload":"x"},{"ips":["10.9.0.1"],"workload":"y"}]}\n' \
	    >"$T/md.json.tmp"
	mv "$T/md.json.tmp" "$T/md.json"
	kill -HUP "$DAEMON_PID"
	wait_err "10.9.0.1 is listed for workloads[0] and workloads[1]: the first is used"
	cat "$T/daemon.err"
	[ "$(grep -c "metadata reloaded" "$T/daemon.err")" -le 4 ]
	# at start-up the same warning, and the daemon runs
	stop_daemon
	start_daemon --metadata "$T/md.json"
	grep -q "^meshlens: --metadata: $T/md.json: 10.9.0.1 is listed for workloads\[0\] and workloads\[1\]: the first is used$" "$T/daemon.err"
}

# --- workload metrics ------------------------------------------------------------

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "workload metrics: both ends named, exact counts; a rename names new connections and never splits an open one" {
	write_md wa wb
	# live passes every 200 ms: where no open record is written, the first
	# pass is what binds the held connection to its series
	echo '{"refresh_interval_ms": 200}' >"$T/c.json"
	start_metrics_daemon -c "$T/c.json" --metadata "$T/md.json"
	traffic pairs 127.0.0.1 100:200 300:400
	# one held open across the rename
	traffic pairs 127.0.0.1 5000:6000 --hold-ms 8000 &
	tpid=$!
	wait_metric 3 meshlens_workload_tcp_connections_opened_total $(wl outbound wb wa)
	write_md wa2 wb2
	wait_err "metadata reloaded from $T/md.json"
	kill -0 "$tpid" # the rename came while it was open
	wait "$tpid"
	traffic pairs 127.0.0.1 7:8
	wait_metric 1 meshlens_workload_tcp_connections_closed_total $(wl inbound wa2 wb2)
	wait_metric 3 meshlens_workload_tcp_connections_closed_total $(wl inbound wa wb)
	scrape_to "$T/m"
	for d in "outbound wb wa" "inbound wa wb"; do
		expect_in "$T/m" 3 meshlens_workload_tcp_connections_opened_total $(wl $d)
		expect_in "$T/m" 3 meshlens_workload_tcp_connections_closed_total $(wl $d)
		expect_in "$T/m" 0 meshlens_workload_tcp_connections_failed_total $(wl $d)
	done
	# bytes of the first three connections (the traffic tool's counts), each side's view
	truth=$(jq -s 'map(select(.event == "conn"))[0:3]' "$T/truth.json")
	sum() { jq --arg f "$1" 'map(.[$f]) | add' <<<"$truth"; }
	[ "$(sum client_sent)" = 5400 ]
	expect_in "$T/m" "$(sum client_sent)" meshlens_workload_tcp_sent_bytes_total $(wl outbound wb wa)
	expect_in "$T/m" "$(sum client_received)" meshlens_workload_tcp_received_bytes_total $(wl outbound wb wa)
	expect_in "$T/m" "$(sum server_sent)" meshlens_workload_tcp_sent_bytes_total $(wl inbound wa wb)
	expect_in "$T/m" "$(sum server_received)" meshlens_workload_tcp_received_bytes_total $(wl inbound wa wb)
	expect_in "$T/m" 7 meshlens_workload_tcp_sent_bytes_total $(wl outbound wb2 wa2)
	expect_in "$T/m" 8 meshlens_workload_tcp_sent_bytes_total $(wl inbound wa2 wb2)
	# four series, no other; the IP-pair set counts the same connections
	[ "$(samples_in count "$T/m" meshlens_workload_tcp_connections_opened_total)" = 4 ]
	expect_in "$T/m" 4 meshlens_series 'set="workload"'
	expect_in "$T/m" "$(samples_in sum "$T/m" meshlens_tcp_connections_closed_total)" \
		meshlens_workload_tcp_connections_closed_total
	expect_in "$T/m" "$(samples_in sum "$T/m" meshlens_tcp_sent_bytes_total)" \
		meshlens_workload_tcp_sent_bytes_total
	promtool check metrics <"$T/m"
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "ip_pair_metrics false: no IP label anywhere; without --metadata no workload families" {
	write_md wa wb
	echo '{"ip_pair_metrics": false}' >"$T/c.json"
	start_metrics_daemon -c "$T/c.json" --metadata "$T/md.json"
	traffic connect 127.0.0.2 1 || true
	traffic pairs 127.0.0.1 10:20
	wait_metric 1 meshlens_workload_tcp_connections_closed_total $(wl outbound wb wa)
	# the refused connect: the socket's own end by cgroup, the peer by 127.0.0.0/8
	wait_metric 1 meshlens_workload_tcp_connections_failed_total \
		'src_workload="wb"' 'dst_workload="wide"' 'dst_namespace="ns-wide"'
	scrape_to "$T/m"
	[ "$(grep -c '^meshlens_tcp_' "$T/m")" = 0 ]
	run ! grep -qE '(src|dst)_ip=' "$T/m"
	expect_in "$T/m" 3 meshlens_series 'set="workload"'
	[ "$(samples_in count "$T/m" meshlens_series 'set="ip_pair"')" = 0 ]
	stop_daemon

	start_metrics_daemon
	traffic pairs 127.0.0.1 10:20
	wait_metric 1 meshlens_tcp_connections_closed_total 'direction="outbound"'
	scrape_to "$T/m"
	[ "$(grep -c '^# TYPE meshlens_workload_' "$T/m")" = 0 ]
	[ "$(samples_in count "$T/m" meshlens_series)" = 1 ]
	expect_in "$T/m" 10000 meshlens_series_limit 'set="ip_pair"'
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "Istio's TCP metrics on a real Prometheus: Kiali's graph queries and the dashboards' TCP panels equal the traffic tool's counts" {
	write_istio_md
	start_metrics_daemon --metadata "$T/md.json"
	start_prometheus
	internal='istio_tcp_sent_bytes_total{reporter="source",source_workload_namespace="ns-cli"}'
	external='istio_tcp_sent_bytes_total{reporter="source",source_workload_namespace!="ns-srv",source_workload!="unknown",destination_service_namespace="ns-srv"}'
	# a first connection, scraped, then more: Prometheus sees the counters grow
	traffic pairs 127.0.0.2 100:200
	wait_for '[ "$(prom_query "sum($internal)")" = 200 ]'
	traffic pairs 127.0.0.2 300:400 50:7000
	n=$(count_truth conn)
	req=$(truth_sum client_sent) resp=$(truth_sum server_sent)
	[ "$n" = 3 ] && [ "$req" = 450 ] && [ "$resp" = 7600 ] || false
	# Kiali's TCP edge queries, as it sends them (a workload inside the
	# namespace; one from another namespace into the service's)
	for sel in "$internal" "$external"; do
		# the same selector and grouping on the counter: exact
		wait_for '[ "$(prom_query "sum($sel) by ($KIALI_TCP_BY)")" = "$resp" ]'
		kiali_edge_ok "$(prom_result "sum($sel) by ($KIALI_TCP_BY)")"
		r=$(prom_result "sum(rate($sel [60s])) by ($KIALI_TCP_BY)")
		kiali_edge_ok "$r"
		jq -e '(.[0].value[1] | tonumber) > 0' <<<"$r" >/dev/null
	done
	# Istio's workload dashboard, inbound TCP panels of srv (reporter destination)
	in='reporter=~"destination",connection_security_policy!="mutual_tls",destination_workload_namespace=~"ns-srv",destination_workload=~"srv"'
	r=$(prom_result "sum(irate(istio_tcp_received_bytes_total{$in}[1m])) by (source_workload, source_workload_namespace)")
	jq -e 'length == 1 and .[0].metric.source_workload == "cli" and .[0].metric.source_workload_namespace == "ns-cli"' <<<"$r" >/dev/null
	[ "$(prom_query "sum(istio_tcp_received_bytes_total{$in}) by (source_workload, source_workload_namespace)")" = "$req" ]
	[ "$(prom_query "sum(istio_tcp_sent_bytes_total{$in}) by (source_workload, source_workload_namespace)")" = "$resp" ]
	# outbound panels of cli (reporter source): the same bytes, Istio's way round
	out='reporter=~"source",source_workload_namespace=~"ns-cli",source_workload=~"cli"'
	[ "$(prom_query "sum(istio_tcp_received_bytes_total{$out}) by (destination_service)")" = "$req" ]
	[ "$(prom_query "sum(istio_tcp_sent_bytes_total{$out}) by (destination_service)")" = "$resp" ]
	for rep in source destination; do
		[ "$(prom_query "sum(istio_tcp_connections_opened_total{reporter=\"$rep\",destination_workload=\"srv\"})")" = "$n" ]
		[ "$(prom_query "sum(istio_tcp_connections_closed_total{reporter=\"$rep\",destination_workload=\"srv\"})")" = "$n" ]
	done
	# every label Istio has, with Istio's fixed values where meshlens cannot know
	prom_result 'istio_tcp_connections_opened_total{reporter="destination"}' | jq -e '.[0].metric |
	  .request_protocol == "tcp" and .connection_security_policy == "unknown" and
	  .source_principal == "spiffe://cluster.local/ns/ns-cli/sa/cli" and .source_app == "cli-app" and
	  .source_version == "v1" and .source_cluster == "c1" and .destination_app == "srv-app" and
	  .destination_version == "v2" and .destination_cluster == "c1" and
	  .destination_principal == "spiffe://cluster.local/ns/ns-srv/sa/srv"' >/dev/null
	run grep -iE 'level=(warn|error).*(scrape|meshlens)' "$T/prometheus.log"
	[ "$status" = 1 ]
}
