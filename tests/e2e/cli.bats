#!/usr/bin/env bats
# Command line, config and start-up behaviour of the real binary.

load helpers

setup() { ml_setup; }
teardown() { ml_teardown; }

@test "--probe names the hook serving each feature on this kernel" {
	run "$MESHLENS" --probe
	[ "$status" = 0 ]
	[[ "$output" == *"connections"*"sockops"* ]]
	[[ "$output" == *"connect-attempts"*"cgroup/connect4+cgroup/connect6"* ]]
	# this kernel refuses trampolines; kernels that allow them use fexit
	[[ "$output" =~ connect-failures\ +(fexit/tcp_v4_connect|cgroup/sock_release) ]]
}

@test "--gen-config round-trips through -c" {
	run "$MESHLENS" --gen-config
	[ "$status" = 0 ]
	echo "$output" >"$T/c.json"
	jq -e . "$T/c.json" >/dev/null
	run "$MESHLENS" -c "$T/c.json" --gen-config
	[ "$status" = 0 ]
	[ "$output" = "$(cat "$T/c.json")" ]
	# a changed value survives the round trip, and the command line wins
	jq '.access_log = "/tmp/x.log" | .drain_interval_ms = 20' "$T/c.json" >"$T/d.json"
	run "$MESHLENS" -c "$T/d.json" -o /tmp/y.log --gen-config
	[ "$(echo "$output" | jq -r '.access_log + " " + (.drain_interval_ms|tostring)')" = "/tmp/y.log 20" ]
}

@test "a config file drives the daemon" {
	jq -n --arg cg "$CG" --arg log "$T/access.log" \
	  '{cgroups: [$cg], access_log: $log, metrics_addr: "off", drain_interval_ms: 10}' >"$T/c.json"
	"$MESHLENS" --pin-path "$PIN" -c "$T/c.json" 2>"$T/daemon.err" &
	DAEMON_PID=$!
	for _ in $(seq 100); do grep -q ready "$T/daemon.err" && break; sleep 0.1; done
	traffic many 127.0.0.1 2
	wait_records 4
	check_conns
}

# bad input: exit 2, one line naming the problem, nothing attached
bad() {
	local expect=$1; shift
	run "$MESHLENS" "$@"
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" == *"$expect"* ]]
	[ -z "$(bpftool cgroup show "$CG")" ]
	[ ! -e "$PIN" ]   # nothing pinned either
}

@test "bad usage and bad config: exit 2 with one clear line" {
	bad "unknown option '--frobnicate'" --frobnicate
	bad "--cgroup" -g
	bad "not a cgroup v2 directory" -g /tmp -o off
	bad "No such file or directory" -g "$CG/nope" -o off
	bad "Not a directory" -g /etc/hostname -o off
	echo '{"access_log": 5}' >"$T/bad1.json"
	bad "access_log" -c "$T/bad1.json"
	echo '{"cgroups": [' >"$T/bad2.json"
	bad "line" -c "$T/bad2.json"
	echo '{"no_such_key": 1}' >"$T/bad3.json"
	bad "no_such_key" -c "$T/bad3.json"
	bad "No such file" -c "$T/missing.json"
	bad "metrics-addr" -m nonsense
	bad "not a cgroup v2 directory" -g /sys/fs/cgroup/memory -o off --pin-path "$PIN"
	echo '{"ringbuf_bytes": 1000}' >"$T/bad4.json"
	bad "ringbuf_bytes" -c "$T/bad4.json"
	echo '{"drain_interval_ms": "fast"}' >"$T/bad5.json"
	bad "drain_interval_ms" -c "$T/bad5.json"
	echo '["not", "an", "object"]' >"$T/bad6.json"
	bad "bad6.json" -c "$T/bad6.json"
	bad "unknown drop point" --drops --include no_such_point -g "$CG" -o off --pin-path "$PIN"
	bad "not on a bpf filesystem" -g "$CG" -o off -m off --pin-path /tmp/not-bpffs-$$
	bad "no such user" --user no-such-user-$$ -g "$CG" -o off --pin-path "$PIN"
	rmdir /tmp/not-bpffs-$$ 2>/dev/null || true
}

@test "not root: exit 2 and says why" {
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$MESHLENS" -g "$CG" -o off
	[ "$status" = 2 ]
	[[ "$output" == *"must run as root"* ]]
}

@test "--version and --help" {
	run "$MESHLENS" --version
	[ "$status" = 0 ]
	[[ "$output" == "meshlens "* ]]
	run "$MESHLENS" --help
	[ "$status" = 0 ]
	for opt in --config --gen-config --cgroup --access-log --metrics-addr --drops --include \
	           --exclude --list --probe --diagnose --detach --user --pin-path --metadata; do
		[[ "$output" == *"$opt"* ]]
	done
}

@test "SIGHUP reopens the access log after it was moved away" {
	start_daemon
	traffic many 127.0.0.1 1
	wait_records 2
	mv "$T/access.log" "$T/access.log.1"
	kill -HUP "$DAEMON_PID"
	sleep 0.2
	traffic many 127.0.0.1 1
	wait_records 2
	[ "$(wc -l <"$T/access.log.1")" = 2 ]
	cat "$T/access.log.1" >>"$T/access.log"
	check_conns
}
