#!/usr/bin/env bats
# Faults: an overloaded consumer, a full disk, slow metrics clients, and
# the privileges the daemon keeps.

load helpers
load reliability_helpers

setup() { ml_setup; }
teardown() {
	[ -n "${FILLER:-}" ] && rm -f "$FILLER"
	[ -n "${IDLE_PID:-}" ] && kill "$IDLE_PID" 2>/dev/null
	if [ -n "${DAEMON_PID:-}" ]; then
		kill -CONT "$DAEMON_PID" 2>/dev/null
		kill -TERM "$DAEMON_PID" 2>/dev/null
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=""
	fi
	[ -n "${TMPFS:-}" ] && umount "$TMPFS" 2>/dev/null
	ml_teardown
	return 0
}

@test "consumer stopped, tiny ringbuf: logged + lost records == connections x 2, exactly; then it carries on" {
	start_with_config '{"ringbuf_bytes": 65536}'
	kill -STOP "$DAEMON_PID"
	traffic many 127.0.0.1 600 --quiet
	kill -CONT "$DAEMON_PID"
	# until every record is either a line or counted lost
	wait_for '[ $(($(lines_in "$T/access.log") + $(metric meshlens_events_lost_total source=\"ringbuf\"))) -ge 1200 ]'
	lines=$(wc -l <"$T/access.log")
	lost=$(metric meshlens_events_lost_total 'source="ringbuf"')
	echo "logged $lines, lost $lost of 1200"
	[ "$lost" -gt 0 ]
	[ $((lines + lost)) = 1200 ]
	# the daemon carries on normally
	: >"$T/truth.json"
	cp "$T/access.log" "$T/before.log"
	: >"$T/access.log"
	traffic many 127.0.0.1 20
	wait_records 40
	check_conns
	[ "$(metric meshlens_events_lost_total 'source="ringbuf"')" = "$lost" ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "disk full: the daemon survives, counts every line it could not write, says so rarely, resumes" {
	TMPFS=$T/full
	mkdir "$TMPFS"
	mount -t tmpfs -o size=256k tmpfs "$TMPFS"
	FILLER=$TMPFS/filler
	start_metrics_daemon -o "$TMPFS/access.log"
	# leave room for a few lines only
	dd if=/dev/zero of="$FILLER" bs=1k count=240 2>/dev/null || true
	traffic many 127.0.0.1 200 --quiet
	# until every record is either a line or counted (a torn one is neither yet)
	wait_for '[ $(($(lines_in "$TMPFS/access.log") + $(metric meshlens_events_lost_total source=\"access_log\"))) -ge 399 ]'
	lines=$(wc -l <"$TMPFS/access.log")
	lost=$(metric meshlens_events_lost_total 'source="access_log"')
	echo "written $lines, not written $lost of 400"
	[ "$lost" -gt 0 ]
	# a line cut short by the full disk is finished first when space returns
	[ $((lines + lost)) -ge 399 ]
	[ $((lines + lost)) -le 400 ]
	kill -0 "$DAEMON_PID"
	# said once per second at most, not per line
	said=$(grep -c "access-log lines could not be written (No space left on device)" "$T/daemon.err")
	[ "$said" -ge 1 ]
	[ "$said" -le 5 ]
	# space returns: new records are written, whole, and every line of the
	# 420 is either in the file or counted as not written
	rm -f "$FILLER"
	traffic many 127.0.0.1 10
	for _ in $(seq 50); do
		[ $(($(wc -l <"$TMPFS/access.log") + lost)) -ge 420 ] && break
		sleep 0.1
	done
	[ $(($(wc -l <"$TMPFS/access.log") + lost)) = 420 ]
	[ "$(metric meshlens_events_lost_total 'source="access_log"')" = "$lost" ]
	jq -e . "$TMPFS/access.log" >/dev/null   # no torn line anywhere
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" || { echo "daemon exit $?"; cat "$T/daemon.err"; false; }
	DAEMON_PID=""
}

@test "after attaching, no capability is left, or only CAP_BPF where this kernel needs it for map reads; --user switches to that user" {
	start_daemon
	# the daemon tried reads without CAP_BPF in a child: the ready line says
	# what it kept (6.5 and later: none; before, with unprivileged BPF off: CAP_BPF)
	kept=$(sed -n 's/.*ready: .*, capabilities \([A-Z_a-z]*\)$/\1/p' "$T/daemon.err")
	echo "kept: $kept"
	case $kept in
	none) want=0000000000000000 ;;
	CAP_BPF) want=0000008000000000 ;;   # bit 39
	*) false ;;
	esac
	if [ "$(sysctl -n kernel.unprivileged_bpf_disabled)" = 0 ] || version_ge "$(uname -r)" 6.5; then
		[ "$kept" = none ]
	fi
	run awk '/^CapEff/ { print $2 }' "/proc/$DAEMON_PID/status"
	[ "$output" = "$want" ]
	run awk '/^CapBnd/ { print $2 }' "/proc/$DAEMON_PID/status"
	[ "$output" = "$want" ]
	stop_daemon
	start_daemon --user nobody
	[ "$(awk '/^Uid/ { print $2 }' "/proc/$DAEMON_PID/status")" = "$(id -u nobody)" ]
	[ "$(awk '/^CapEff/ { print $2 }' "/proc/$DAEMON_PID/status")" = "$want" ]
	# it still logs, and still refreshes open connections through the iterator
	traffic many 127.0.0.1 5
	wait_records 10
	check_conns
	run "$MESHLENS" --user no-such-user-here -g "$CG" -o off -m off
	[ "$status" = 2 ]
	[[ "$output" == *"no-such-user-here"* ]]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "1000 idle connections to the metrics port do not stall record processing" {
	start_with_config '{}'
	"$BUILD/mlpkt" connect-flood 127.0.0.1 "$MPORT" 1000 --hold-ms 4000 >"$T/flood.json" &
	IDLE_PID=$!
	wait_for "grep -q flooding $T/flood.json"
	traffic many 127.0.0.1 100
	wait_records 200
	check_conns
	kill "$IDLE_PID" 2>/dev/null; IDLE_PID=""
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "slowloris: 150 connections trickling a header line a second; /healthz and /metrics answer throughout, every trickler is cut within 10 s" {
	start_metrics_daemon
	slowloris "$MPORT" 150 20 "$T/slowloris.ready" >"$T/slowloris.json" &
	IDLE_PID=$!
	wait_for "[ -s $T/slowloris.ready ]"
	# 16 s: past MHD's 10 s inactivity timeout, which a trickle never trips
	start=$SECONDS
	while [ $((SECONDS - start)) -lt 16 ]; do
		code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$MURL/healthz") || true
		[ "$code" = 200 ] || { echo "/healthz: '$code' after $((SECONDS - start)) s" >&2; false; }
		scrape_to "$T/m" --max-time 2 || { echo "/metrics failed after $((SECONDS - start)) s" >&2; false; }
		sleep 0.5
	done
	wait "$IDLE_PID"
	IDLE_PID=""
	cat "$T/slowloris.json"
	# the first 150 and their replacements were cut, none answered, none lived past the bound
	jq -e '.cut >= 150 and .answered == 0 and .min_lived >= 9 and .max_lived <= 12.5
		and .open == 150 and .oldest_open <= 12.5' "$T/slowloris.json" >/dev/null
	[ "$(curl -s --max-time 2 "$MURL/healthz")" = ok ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "1000 idle connections held open: scrapes answer at once, with the exact counts" {
	start_metrics_daemon
	"$BUILD/mlpkt" connect-flood 127.0.0.1 "$MPORT" 1000 --hold-ms 20000 >"$T/flood.json" &
	IDLE_PID=$!
	wait_for "grep -q flooding $T/flood.json"
	start=$SECONDS
	scrape_to "$T/m0" --max-time 2
	expect_in "$T/m0" 0 meshlens_tcp_connections_opened_total
	traffic many 127.0.0.1 40
	n=$(count_truth conn)
	[ "$n" = 40 ]
	wait_metric "$n" meshlens_tcp_connections_closed_total 'direction="inbound"'
	scrape_to "$T/m" --max-time 2
	for dir in outbound inbound; do
		expect_in "$T/m" "$n" meshlens_tcp_connections_opened_total "direction=\"$dir\""
		expect_in "$T/m" "$n" meshlens_tcp_connections_closed_total "direction=\"$dir\""
	done
	expect_in "$T/m" "$(truth_sum server_sent)" meshlens_tcp_sent_bytes_total 'direction="inbound"'
	# all of that beside the 1000, all still open (the daemon cuts them at 10 s)
	echo "scrapes done $((SECONDS - start)) s into the flood"
	held 1000
	kill "$IDLE_PID" 2>/dev/null; IDLE_PID=""
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "size rotation while traffic flows: gzip'd files, every line exactly once, none split, mode 0640" {
	start_with_config '{"log_max_size_kb": 16, "log_max_files": 1000}'
	traffic many 127.0.0.1 500 --interval-ms 1
	sleep 0.5
	stop_daemon
	n_gz=$(find "$T" -name 'access.log.*.gz' | wc -l)
	echo "rotated files: $n_gz"
	[ "$n_gz" -ge 10 ]
	[ -z "$(find "$T" -name 'access.log*' ! -perm 0640)" ]
	# all lines, oldest file first, parse as JSON: none split
	{ for f in $(find "$T" -name 'access.log.*.gz' | sort -t. -k3,3nr); do zcat "$f"; done
	  cat "$T/access.log"; } >"$T/all.log"
	jq -e . "$T/all.log" >/dev/null
	[ "$(wc -l <"$T/all.log")" = 1000 ]
	mv "$T/all.log" "$T/access.log"
	check_conns
}
