# Helpers of tests/e2e/drops.bats: the drop daemon, network namespaces,
# packets from build/mlpkt, the kernel's own counters, the drop log.
# shellcheck shell=bash
# Label lists are split into arguments on purpose (lbl='k="v" k2="v2"'),
# jq programs are single-quoted on purpose, and wait_for evaluates its
# string (what it names is used there):
# shellcheck disable=SC2016,SC2086,SC2089,SC2090,SC2013,SC2034

MLPKT=$BUILD/mlpkt

# The flow a ground-truth line $t describes, as a jq condition on a drop
# line: protocol, family, both addresses, and ports or ICMP type/code.
FLOW='.family == $t.family and .src_addr == $t.src_addr and .dst_addr == $t.dst_addr
  and .protocol == ({udp: "udp", tcp: "tcp", sctp: "sctp", icmp: "icmp", icmp6: "icmpv6"} | .[$t.event])
  and (if $t.event == "icmp" or $t.event == "icmp6"
       then .icmp_type == $t.icmp_type and .icmp_code == $t.icmp_code
       else .src_port == $t.src_port and .dst_port == $t.dst_port end)'

# What every drop line holds (the contract's keys and their types).
DROP_SCHEMA='def ts: type == "string" and test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$");
  def uint: type == "number" and . >= 0 and . == floor;
  (.time | ts) and (.first_time | ts) and .first_time <= .time
  and (.reason | type == "string" and test("^[A-Z0-9_]+$"))
  and (.layer | IN("l1", "l2", "l3", "l4", "other"))
  and (.module | type == "string" and length > 0)
  and (.direction | IN("ingress", "egress"))
  and (.family | IN("ipv4", "ipv6"))
  and (.protocol | IN("tcp", "udp", "icmp", "icmpv6", "sctp", "other"))
  and (.src_addr | type == "string") and (.dst_addr | type == "string")
  and (if .protocol | IN("tcp", "udp", "sctp") then (.src_port | uint) and (.dst_port | uint)
       elif .protocol | IN("icmp", "icmpv6") then (.icmp_type | uint) and (.icmp_code | uint)
       else true end)
  and (.packets | uint) and .packets > 0 and (.bytes | uint) and .bytes > 0
  and (.ifindex | uint) and (.netns | uint)
  and (if .protocol == "tcp" then (.tcp_flags | type == "string" and test("^[A-Z]+(\\|[A-Z]+)*$"))
       else true end)'

# start_drops_daemon [extra args...]: start_metrics_daemon with --drops and
# refresh_interval_ms 200 (drop log lines every 200 ms)
start_drops_daemon() {
	echo '{"refresh_interval_ms": 200}' >"$T/c.json"
	start_metrics_daemon -c "$T/c.json" --drops "$@"
}

# wait_delta BASE EXPECTED NAME [k="v" ...]: poll until the sum has grown by
# EXPECTED since the scrape saved in BASE, and still has one refresh later
wait_delta() {
	local base=$1 want=$2 b; shift 2
	b=$(samples_in sum "$base" "$@")
	wait_metric $((b + want)) "$@" || { echo "(base $b, want +$want)" >&2; return 1; }
	sleep 0.3
	wait_metric $((b + want)) "$@"
}

# delta BASE FILE NAME [k="v" ...]: growth of the sum between two saved scrapes
delta() {
	local base=$1 file=$2; shift 2
	echo $(($(samples_in sum "$file" "$@") - $(samples_in sum "$base" "$@")))
}

# expect_delta BASE FILE EXPECTED NAME [k="v" ...]
expect_delta() {
	local base=$1 file=$2 want=$3 got; shift 3
	got=$(delta "$base" "$file" "$@")
	[ "$got" = "$want" ] && return 0
	echo "$1{${*:2}} grew by $got, want $want; samples before and after:" >&2
	grep -E "^$1[{ ]" "$base" "$file" >&2
	return 1
}

# make_ns: a network namespace (removed in teardown) with lo up,
# 10.213.0.1/32 and fd00:213::1/128 on lo; sets NS and NS_INODE (its
# inode number, what the drop log's "netns" holds)
make_ns() {
	NS=mldrop$$-${BATS_TEST_NUMBER}
	ip netns add "$NS"
	NETNS+=("$NS")
	ip -n "$NS" link set lo up
	ip -n "$NS" addr add 10.213.0.1/32 dev lo
	ip -n "$NS" addr add fd00:213::1/128 dev lo nodad
	NS_INODE=$(stat -L -c %i "/run/netns/$NS")
}

# in_ns CMD...: run a command in $NS
in_ns() {
	ip netns exec "$NS" "$@"
}

# rule_count IPTABLES CHAIN pkts|bytes: the counter summed over the DROP
# rules of CHAIN in $NS (iptables counts whole IP packets)
rule_count() {
	in_ns "$1" -L "$2" -v -x -n | awk -v f="$3" '$3 == "DROP" { s += (f == "pkts" ? $1 : $2) }
		END { print s + 0 }'
}

# nstat_value NAME: a counter of $NS (nstat -a: absolute value)
nstat_value() {
	in_ns nstat -az "$1" | awk -v n="$1" '$1 == n { print $2 }'
}

# pkt NAME ARGS...: mlpkt inside $CG and $NS (it joins the cgroup before
# entering the namespace, see traffic_in_netns); its ground-truth line is
# saved as $T/NAME.json
pkt() {
	local name=$1; shift
	bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec ip netns exec "$@"' \
		_ "$CG" "$NS" "$MLPKT" --max-seconds 20 "$@" >"$T/$name.json"
	cat "$T/$name.json" >>"$T/truth.json"
}

# closed_port_drops N: N UDP packets to a closed port of $NS, all of them
# dropped (the namespace's Udp NoPorts grew by N, counted just before the
# kernel frees each)
closed_port_drops() {
	local before
	before=$(nstat_value UdpNoPorts)
	pkt closed udp 10.213.0.1 10.213.0.1 9 "$1" --size 64 --interval-ms 20
	[ $(($(nstat_value UdpNoPorts) - before)) = "$1" ]
}

# truth NAME FIELD: a field of a saved ground-truth line
truth() {
	jq -r ".$2" "$T/$1.json"
}

# drops NAME COND: the access log's drop lines for which the jq condition
# COND holds, as one JSON array; in COND, $t is the ground truth NAME
drops() {
	local f=$T/access.log
	[ -s "$f" ] || { echo '[]'; return 0; }
	jq -s -c --slurpfile t "$T/$1.json" "\$t[0] as \$t | map(select(.type == \"drop\" and ($2)))" "$f"
}

# drop_sum NAME COND FIELD: FIELD summed over those drop lines
drop_sum() {
	drops "$1" "$2" | jq ".[].$3" | awk '{ s += $1 } END { print s + 0 }'
}

# wait_drop_packets NAME COND N: wait (up to 5 s) until those drop lines
# sum to N packets, and check it is still N two refresh intervals later
wait_drop_packets() {
	local got=""
	for _ in $(seq 50); do
		got=$(drop_sum "$1" "$2" packets) && [ "$got" = "$3" ] && break
		sleep 0.1
	done
	if [ "$got" = "$3" ]; then
		sleep 0.5
		got=$(drop_sum "$1" "$2" packets)
		[ "$got" = "$3" ] && return 0
	fi
	echo "drop log: $got packets where [$2] holds, want $3; drop lines:" >&2
	grep '"type":"drop"' "$T/access.log" >&2
	return 1
}

# check_drops NAME COND MORE: every drop line where COND holds has the
# contract's keys and types, and MORE (a jq condition, $t as in COND) holds
check_drops() {
	local bad
	bad=$(drops "$1" "$2" | jq -c --slurpfile t "$T/$1.json" "\$t[0] as \$t
		| map(select((($DROP_SCHEMA) and ($3)) | not)) | .[]")
	[ -z "$bad" ] && return 0
	echo "drop lines that break the contract or [$3]:" >&2
	echo "$bad" >&2
	return 1
}

# list_field REASON COLUMN: a column (2 layer, 3 module, 4 value, 5 default)
# of REASON's row in `meshlens --list`
list_field() {
	[ -s "$T/list.txt" ] || "$MESHLENS" --list >"$T/list.txt"
	awk -v r="$1" -v c="$2" 'NR > 1 && $1 == r { print $c }' "$T/list.txt"
}

# kreason NAME: the reason this kernel counts a drop of NAME under: NAME, or
# NOT_SPECIFIED where it names no drop (before 5.17)
kreason() {
	if [ -n "$(list_field NETFILTER_DROP 1)" ]; then echo "$1"; else echo NOT_SPECIFIED; fi
}

# conn_records: connection records (lines without "type"), one JSON array
conn_records() {
	jq -s -c 'map(select(has("type") | not))' "$T/access.log"
}

# prog_names_of PID: names of the BPF programs PID holds (prog and link fds)
prog_names_of() {
	local id
	for id in $(grep -hs '^prog_id:' /proc/"$1"/fdinfo/* | awk '{ print $2 }' | sort -u); do
		bpftool prog show id "$id" -j 2>/dev/null | jq -r .name
	done
}

# finding_for POINT NUMBER: from a --diagnose report on stdin, the first
# finding that names POINT and NUMBER (a port: not part of a longer
# number). A finding is a paragraph (blank-line separated) or, in a report
# without blank lines, the lines up to and including a "hint:" line.
finding_for() {
	local report
	report=$(cat)
	if [ "$(awk 'BEGIN { RS = "" } END { print NR }' <<<"$report")" -gt 1 ]; then
		awk 'BEGIN { RS = "" } { print; print "\036" }' <<<"$report"
	else
		awk '{ print } /hint:/ { print "\036" }' <<<"$report"
	fi |
	awk -v point="$1" -v num="$2" '
		BEGIN { RS = "\036\n" }
		index($0, point) && match(" " $0 " ", "[^0-9]" num "[^0-9]") { printf "%s", $0; exit }'
}

# bg CMD...: run a shell function or command in the background, killed in teardown
bg() {
	"$@" &
	BG_PIDS+=("$!")
	BG_LAST=$!
}

# wait_tool PID SECONDS: wait until PID has exited or SECONDS passed
wait_tool() {
	for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}

# check_netfilter_ingress HOOK [REASON LAYER MODULE]: iptables INPUT drops 17
# datagrams; with the drop program on HOOK, metrics and drop log match the
# rule's counters under REASON (default NETFILTER_DROP, or NOT_SPECIFIED on a
# kernel without drop reasons)
check_netfilter_ingress() {
	local hook=$1 reason=${2:-} layer=${3:-l3} module=${4:-l3.netfilter}
	if [ -z "$reason" ]; then
		reason=NETFILTER_DROP
		# a kernel without drop reasons (before 5.17) names every drop NOT_SPECIFIED
		if [ "$(list_field NETFILTER_DROP 1)" = "" ]; then
			reason=NOT_SPECIFIED layer=other module=other
		fi
	fi
	make_ns
	in_ns iptables -A INPUT -p udp --dport 9999 -j DROP
	# a kernel without drop reasons reports NOT_SPECIFIED, which is off by default elsewhere
	start_drops_daemon ${DROPS_ARGS:-}
	# with --drops the daemon holds the kfree_skb program, on that hook
	prog_names_of "$DAEMON_PID" >"$T/progs"
	grep -q '^ml_kfree' "$T/progs" || { echo "daemon programs:" >&2; cat "$T/progs" >&2; false; }
	[ "$(metric meshlens_hook_info 'feature="packet-drops"' "hook=\"$hook\"")" = 1 ]
	lbl="reason=\"$reason\" protocol=\"udp\" direction=\"ingress\""
	scrape_to "$T/m0"
	# 17 datagrams over ~0.5 s: they span several 200 ms drop-log intervals
	pkt nf udp 10.213.0.1 10.213.0.1 9999 17 --size 100 --interval-ms 30
	[ "$(truth nf packets)" = 17 ]
	[ "$(truth nf sent)" = 17 ]
	pkts=$(rule_count iptables INPUT pkts)
	bytes=$(rule_count iptables INPUT bytes)
	echo "rule: $pkts packets, $bytes bytes"
	[ "$pkts" = 17 ]
	[ "$bytes" = $((17 * $(truth nf ip_len))) ]
	wait_delta "$T/m0" "$pkts" meshlens_drops_total $lbl
	scrape_to "$T/m"
	expect_delta "$T/m0" "$T/m" "$pkts" meshlens_drops_total $lbl "layer=\"$layer\""
	# skb->len where netfilter drops it is the whole IP packet, as iptables counts
	expect_delta "$T/m0" "$T/m" "$bytes" meshlens_drop_bytes_total $lbl "layer=\"$layer\""
	# the drop log: the flow's lines add up to the same packets and bytes
	wait_drop_packets nf "$FLOW" 17
	[ "$(drop_sum nf "$FLOW" bytes)" = "$bytes" ]
	check_drops nf "$FLOW" '.reason == "'"$reason"'" and .layer == "'"$layer"'" and .module == "'"$module"'"
		and .direction == "ingress" and .family == "ipv4" and .netns == '"$NS_INODE"'
		and .ifindex == 1'
	# written per interval: the packets spread over ~0.5 s give more than one line
	[ "$(drops nf "$FLOW" | jq length)" -ge 2 ]
	# --list agrees on the reason's layer and module
	[ "$(list_field "$reason" 2)" = "$layer" ]
	[ "$(list_field "$reason" 3)" = "$module" ]
}

# check_tcp_egress_drops: every second data segment of a 3 MB upload is
# dropped in OUTPUT; the sending socket's record has drops equal to the
# rule's count (where the serving hook reaches the socket storage), and
# the drop log has the flow, exact
check_tcp_egress_drops() {
	make_ns
	port=8080
	start_drops_daemon
	bg traffic_in_netns "$NS" --max-seconds 20 serve 10.213.0.1 "$port" --count 1
	server=$BG_LAST
	for _ in $(seq 50); do grep -q '"listening"' "$T/truth.json" 2>/dev/null && break; sleep 0.1; done
	grep -q '"listening"' "$T/truth.json"
	# every second data segment of the client (IP length >= 200; the SYN,
	# pure ACKs and the FIN are shorter) is dropped in OUTPUT, where the
	# packet still belongs to the client's socket; TCP sends it again
	in_ns iptables -A OUTPUT -p tcp --dport "$port" -m length --length 200:65535 \
		-m statistic --mode nth --every 2 --packet 0 -j DROP
	bg traffic_in_netns "$NS" --max-seconds 20 send 10.213.0.1 "$port" 3000000
	client=$BG_LAST
	wait_tool "$client" 3
	# an ACCEPT in front freezes the DROP rule's counters, then the rest flows
	in_ns iptables -I OUTPUT 1 -p tcp --dport "$port" -j ACCEPT
	pkts=$(rule_count iptables OUTPUT pkts) bytes=$(rule_count iptables OUTPUT bytes)
	wait "$client"
	wait "$server"
	echo "rule dropped $pkts segments ($bytes bytes)"
	[ "$pkts" -gt 0 ]
	jq -e -s 'map(select(.event == "sent"))[0] | .sent == 3000000 and .outcome == "ok"' "$T/truth.json"
	jq -e -s 'map(select(.event == "served"))[0] | .received == 3000000 and .outcome == "ok"' "$T/truth.json"
	cport=$(jq -s 'map(select(.event == "sent"))[0].src_port' "$T/truth.json")
	wait_records 2
	out=$(conn_records | jq -c --argjson p "$cport" 'map(select(.src_port == $p and .direction == "outbound"))')
	in=$(conn_records | jq -c --argjson p "$cport" 'map(select(.src_port == $p and .direction == "inbound"))')
	echo "outbound: $out"
	echo "inbound: $in"
	[ "$(jq length <<<"$out")" = 1 ]
	[ "$(jq length <<<"$in")" = 1 ]
	reason=NETFILTER_DROP
	[ -n "$(list_field NETFILTER_DROP 1)" ] || reason=NOT_SPECIFIED # no reasons before 5.17
	if grep -q 'packet-drops=tracepoint' "$T/daemon.err" ||
	   "$MESHLENS" --probe --drops | grep -q 'no per-connection drop counts'; then
		# the serving hook cannot reach the socket storage: no record claims a count
		[ "$(conn_records | jq 'map(select(has("drops") or has("last_drop_reason"))) | length')" = 0 ]
		wait_drop_packets_egress "$cport" "$port" "$pkts" "$bytes" "$reason"
		return 0
	fi
	# with --drops every record has "drops"
	[ "$(conn_records | jq 'map(select(.drops | type != "number")) | length')" = 0 ]
	[ "$(jq '.[0].drops' <<<"$out")" = "$pkts" ]
	[ "$(jq -r '.[0].last_drop_reason' <<<"$out")" = "$reason" ]
	# none of the rule's drops is the server's; what the server did drop
	# (duplicate data of retransmissions: TCP_OLD_SEQUENCE and the like) is
	# in the drop log under its socket cookie, to the packet
	scookie=$(jq '.[0].sock_cookie' <<<"$in")
	sdrops_want=$(jq '.[0].drops' <<<"$in")
	# (drop lines come with the next pass over the drop flows)
	wait_for '[ "$(drop_packets_of "$scookie")" = "$sdrops_want" ]'
	[ "$(jq -s --argjson c "$scookie" \
		'map(select(.type == "drop" and .sock_cookie == $c and .reason == "NETFILTER_DROP")) | length' \
		"$T/access.log")" = 0 ]
	wait_drop_packets_egress "$cport" "$port" "$pkts" "$bytes" "$reason"
}

# wait_drop_packets_egress CPORT PORT PKTS BYTES REASON: the drop log has
# the client's flow: egress lines adding up to the rule's counts, with TCP
# flags and state
wait_drop_packets_egress() {
	jq -n --argjson p "$1" --argjson d "$2" \
		'{event: "tcp", family: "ipv4", src_addr: "10.213.0.1", src_port: $p, dst_addr: "10.213.0.1", dst_port: $d}' \
		>"$T/tcp.json"
	# the server's own drops of the flow (TCP_OLD_SEQUENCE: duplicates of
	# retransmitted data) arrive, the rule's leave
	wait_drop_packets tcp "$FLOW and .direction == \"egress\"" "$3"
	[ "$(drop_sum tcp "$FLOW and .direction == \"egress\"" bytes)" = "$4" ]
	check_drops tcp "$FLOW and .direction == \"egress\"" '.reason == "'"$5"'"
		and (.tcp_flags | split("|") | any(. == "ACK"))
		and (.tcp_state | type == "string" and test("^[A-Z_0-9]+$"))'
}
