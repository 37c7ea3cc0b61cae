#!/usr/bin/env bats
# Command line, config and start-up behaviour of the real binary.

load helpers
load cli_helpers

setup() { ml_setup; }
teardown() { ml_teardown; }

@test "--probe names the hook serving each feature on this kernel, or why it is off; exit 0" {
	run "$MESHLENS" --probe
	echo "$output"
	[ "$status" = 0 ]
	# one line per feature: name, state, hook ("-" when off), (why)
	[ "$(awk '{ print $1 }' <<<"$output" | tr '\n' ' ')" = \
	  "connections connect-attempts live-counters connect-failures packet-drops node-retransmits " ]
	[ -z "$(awk '$2 != "on" && $2 != "fallback" && $2 != "off"' <<<"$output")" ]
	[ -z "$(awk '$2 == "off" && $3 != "-"' <<<"$output")" ]
	[[ "$output" == *"connections        on        sockops"* ]]
	[[ "$output" == *"connect-attempts   on        cgroup/connect4+cgroup/connect6"* ]]
	# what this kernel allows decides the variant; each is exercised below
	[[ "$output" =~ connect-failures\ +(on\ +fexit/tcp_v4_connect\+fexit/tcp_v6_connect|fallback\ +cgroup/sock_release) ]]
	[[ "$output" =~ live-counters\ +(on\ +iter/bpf_sk_storage_map|fallback\ +iter/task_file) ]]
	[[ "$output" == *"packet-drops       off       -  (off by default: --drops)"* ]]
}

@test "MESHLENS_TEST_REFUSE: each feature falls back variant by variant, or off, and nothing else moves" {
	run probe_line live-counters MESHLENS_TEST_REFUSE=ml_iter_live
	# (off before 5.11, which has no bpf_sock_from_file)
	[[ "$output" == "live-counters      fallback  iter/task_file  (iter/bpf_sk_storage_map: Operation not permitted"* ||
	   "$output" == "live-counters      off       -  (iter/bpf_sk_storage_map: Operation not permitted (MESHLENS_TEST_REFUSE); iter/task_file: Invalid argument"* ]]
	run probe_line live-counters MESHLENS_TEST_REFUSE=iter
	[[ "$output" == "live-counters      off       -  ("*"iter/task_file: Operation not permitted (MESHLENS_TEST_REFUSE); bytes of open connections counted when they close)" ]]
	run probe_line connect-failures MESHLENS_TEST_REFUSE=fexit
	[[ "$output" == "connect-failures   fallback  cgroup/sock_release  (fexit/tcp_v4_connect+fexit/tcp_v6_connect: Operation not permitted"* ]]
	run probe_line connect-failures MESHLENS_TEST_REFUSE=fexit,cgroup/sock_release
	[[ "$output" == "connect-failures   off       -  ("*"a connect() failing before any SYN is not logged)" ]]
	# (on before 6.11, whose kfree_skb has no rx_sk: that variant is its first;
	# before 5.17 the one without a reason)
	run probe_line packet-drops MESHLENS_TEST_REFUSE=ml_kfree_skb
	[[ "$output" =~ ^packet-drops\ +(on|fallback)\ +tp_btf/kfree_skb\ +\(.*(no\ rx_sk|gives\ no\ drop\ reason) ]]
	run probe_line packet-drops MESHLENS_TEST_REFUSE=tp_btf
	[[ "$output" == "packet-drops       fallback  tracepoint/skb/kfree_skb  ("* ]]
	run probe_line node-retransmits MESHLENS_TEST_REFUSE=tp_btf,tracepoint
	[[ "$output" == "node-retransmits   off       -  ("*"no node-wide retransmission counts)" ]]
	# everything optional refused: the core still serves, --probe exits 0
	run env MESHLENS_TEST_REFUSE=iter,fexit,cgroup/sock_release,tp_btf,tracepoint "$MESHLENS" --probe --drops
	[ "$status" = 0 ]
	[ "$(awk '$2 == "off"' <<<"$output" | wc -l)" = 4 ]
	[[ "$output" == *"connections        on        sockops"* ]]
}

@test "classic tracepoints without tracefs: the daemon mounts it (in a private mount namespace here), the host's mounts untouched" {
	before=$(findmnt -rn -o TARGET,FSTYPE | sort)
	run unshare -m --propagation private bash -c '
		umount -l /sys/kernel/debug/tracing 2>/dev/null; umount -l /sys/kernel/debug 2>/dev/null
		umount -l /sys/kernel/tracing 2>/dev/null
		findmnt -rn -t tracefs && { echo "tracefs still mounted"; exit 1; }
		MESHLENS_TEST_REFUSE=tp_btf "$1" --probe --drops || exit 1
		findmnt -rn -o TARGET -t tracefs' _ "$MESHLENS"
	echo "$output"
	[ "$status" = 0 ]
	[[ "$output" == *"packet-drops       fallback  tracepoint/skb/kfree_skb"* ]]
	[[ "$output" == *"node-retransmits   fallback  tracepoint/tcp/tcp_retransmit_skb+tracepoint/tcp/tcp_retransmit_synack"* ]]
	[ "${lines[-1]}" = /sys/kernel/tracing ]
	[ "$(findmnt -rn -o TARGET,FSTYPE | sort)" = "$before" ]
}

@test "a refused core program: exit 1, one line naming it, nothing pinned or attached" {
	run env MESHLENS_TEST_REFUSE=ml_sockops "$MESHLENS" --pin-path "$PIN" -g "$CG" -m off
	[ "$status" = 1 ]
	[ "${#lines[@]}" = 1 ]
	[ "${lines[0]}" = "meshlens: loading the core BPF program ml_sockops: Operation not permitted (MESHLENS_TEST_REFUSE)" ]
	[ ! -e "$PIN" ]
	[ -z "$(cgroup_attached "$CG")" ]
}

@test "a map pinned by something else in the pin directory: exit 2 with one line, no libbpf chatter" {
	mkdir -p "$PIN"
	bpftool map create "$PIN/events" type array key 4 value 4 entries 1 name events
	run timeout -k 5 20 "$MESHLENS" --pin-path "$PIN" -g "$CG" -o off -m off
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[ "$output" = "meshlens: loading the core BPF programs: Invalid argument (maps pinned under $PIN by another meshlens version or ringbuf_bytes? remove them with --detach)" ]
	[ -z "$(cgroup_attached "$CG")" ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
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
	# a cgroup v1 hierarchy, where the host has one (hybrid mode)
	v1=$(awk '$0 ~ / - cgroup / { print $5; exit }' /proc/self/mountinfo)
	[ -z "$v1" ] || bad "not a cgroup v2 directory" -g "$v1" -o off --pin-path "$PIN"
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
	# a relative pin path, on the command line or in the config (was SIGSEGV)
	bad "--pin-path 'foo': must be an absolute path" -g "$CG" -o off -m off --pin-path foo
	echo '{"pin_path": "foo"}' >"$T/bad7.json"
	bad "must be an absolute path" -c "$T/bad7.json" -g "$CG" -o off -m off
	[ ! -e foo ]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "--detach removes only what meshlens pinned; refuses what is not a pin directory of its own" {
	# not on bpffs: exit 2, nothing deleted
	mkdir "$T/dir"
	echo keep >"$T/dir/important.txt"
	bad "not on a bpf filesystem" --detach --pin-path "$T/dir"
	[ "$(cat "$T/dir/important.txt")" = keep ]
	bad "must be an absolute path" --detach --pin-path foo
	# another tool's pinned map in meshlens's directory stays; meshlens's go
	start_daemon # mounts /sys/fs/bpf where it is missing
	stop_daemon
	bpftool map create "$PIN/other" type array key 4 value 4 entries 1 name other
	run "$MESHLENS" --detach --pin-path "$PIN"
	[ "$status" = 0 ]
	[ "$(ls "$PIN")" = other ]
	[ -z "$(cgroup_attached "$CG")" ]
	rm "$PIN/other"
	rmdir "$PIN"
	# the bpffs root, shared with every other tool
	bad "the root of a bpf filesystem" --detach --pin-path /sys/fs/bpf
	bad "the root of a bpf filesystem" --pin-path /sys/fs/bpf -g "$CG" -o off -m off
}

@test "nested or repeated --cgroup: exit 2 with one line, nothing attached; the parent alone records the child's sockets once" {
	mkdir "$CG/child"
	# programs on a cgroup run for every cgroup below it: a second
	# attachment below would record each socket twice
	bad "--cgroup '$CG/child' is inside --cgroup '$CG', which already sees its sockets" \
	    -g "$CG" -g "$CG/child" --pin-path "$PIN" -o off -m off
	bad "--cgroup '$CGREL/child' is inside --cgroup '$CG'" \
	    -g "$CGREL/child" -g "$CG" --pin-path "$PIN" -o off -m off
	ln -s "$CG" "$T/cg-link"
	bad "--cgroup '$CG' and --cgroup '$T/cg-link' are the same cgroup" \
	    -g "$CG" -g "$T/cg-link" --pin-path "$PIN" -o off -m off
	printf '{"cgroups":["%s","%s/child"],"pin_path":"%s","metrics_addr":"off"}\n' \
	    "$CG" "$CG" "$PIN" >"$T/nested.json"
	bad "is inside --cgroup '$CG'" -c "$T/nested.json"
	[ -z "$(cgroup_attached "$CG/child")" ]
	start_daemon
	"$MLTRAFFIC" --cgroup "$CG/child" many 127.0.0.1 3 >>"$T/truth.json"
	wait_records 6
	check_conns
	[ "$(jq -s 'map(.sock_cookie) | unique | length' "$T/access.log")" = 6 ]
}

@test "one daemon per pin path: a second exits 2 naming the first's pid, --detach too; after the first dies, a new one starts" {
	start_daemon
	first=$DAEMON_PID
	run timeout -k 5 20 "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/second.log" -m off
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[ "$output" = "meshlens: --pin-path '$PIN': in use by another meshlens (pid $first)" ]
	run "$MESHLENS" --detach --pin-path "$PIN"
	[ "$status" = 2 ]
	[ "$output" = "meshlens: --detach: --pin-path '$PIN': in use by another meshlens (pid $first)" ]
	[ -e "$PIN/events" ]
	# the first is untouched and alone on the ring: each record once
	traffic many 127.0.0.1 3
	wait_records 6
	check_conns
	[ "$(lines_in "$T/second.log")" = 0 ]
	# the kernel drops the lock however the holder ends
	kill -KILL "$first"
	wait "$first" || true
	DAEMON_PID=""
	mv "$T/access.log" "$T/access.log.first"
	start_daemon
	traffic many 127.0.0.1 2
	wait_records 4
	cat "$T/access.log.first" >>"$T/access.log"
	check_conns
}

@test "not root: exit 2 and says why" {
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$MESHLENS" -g "$CG" -o off
	[ "$status" = 2 ]
	[[ "$output" == *"must run as root"* ]]
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
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

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "SIGHUP reopens the access log after it was moved away" {
	start_daemon
	traffic many 127.0.0.1 1
	wait_records 2
	mv "$T/access.log" "$T/access.log.1"
	kill -HUP "$DAEMON_PID"
	wait_for '[ -e "$T/access.log" ]'
	traffic many 127.0.0.1 1
	wait_records 2
	[ "$(wc -l <"$T/access.log.1")" = 2 ]
	cat "$T/access.log.1" >>"$T/access.log"
	check_conns
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "a reopen that fails is retried; lines meanwhile are counted lost, none go to the old file" {
	mkdir "$T/logs"
	start_metrics_daemon -o "$T/logs/access.log"
	traffic many 127.0.0.1 2
	wait_for '[ "$(lines_in "$T/logs/access.log")" = 4 ]'
	# the directory goes and a file takes its name: not even mkdir can help
	rm -r "$T/logs"
	echo x >"$T/logs"
	kill -HUP "$DAEMON_PID"
	wait_for 'grep -q "reopening access log $T/logs/access.log: Not a directory" "$T/daemon.err"'
	traffic many 127.0.0.1 3
	wait_metric 6 meshlens_events_lost_total 'source="access_log"'
	# the way back: connections until one's lines land in the new file
	rm "$T/logs"
	conns=5
	for _ in $(seq 100); do
		[ "$(lines_in "$T/logs/access.log")" -gt 0 ] && break
		traffic many 127.0.0.1 1
		conns=$((conns + 1))
		sleep 0.1
	done
	# every line since the failure is in the new file or counted lost, once
	wait_for '[ $(($(lines_in "$T/logs/access.log") +
	               $(metric meshlens_events_lost_total source=\"access_log\"))) = $((2 * conns - 4)) ]'
	lost=$(metric meshlens_events_lost_total 'source="access_log"')
	[ "$lost" -ge 6 ]
	grep -q "reopened $T/logs/access.log ($lost lines lost while it could not be)" "$T/daemon.err"
	[ "$(grep -c reopen "$T/daemon.err")" = 2 ]   # said once, and the recovery
	jq -e . "$T/logs/access.log" >/dev/null
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "a symlink planted at the log path is not followed at reopen; one given at start is" {
	start_metrics_daemon
	traffic many 127.0.0.1 1
	wait_records 2
	mv "$T/access.log" "$T/access.log.1"
	ln -s "$T/victim" "$T/access.log"
	kill -HUP "$DAEMON_PID"
	wait_for 'grep -q "reopening access log $T/access.log: a symbolic link is there (not followed)" "$T/daemon.err"'
	traffic many 127.0.0.1 1
	wait_metric 2 meshlens_events_lost_total 'source="access_log"'
	[ ! -e "$T/victim" ]
	[ "$(lines_in "$T/access.log.1")" = 2 ]
	stop_daemon
	# the operator's own symlink
	rm "$T/access.log"
	ln -s "$T/real.log" "$T/access.log"
	start_daemon
	traffic many 127.0.0.1 1
	wait_for '[ "$(lines_in "$T/real.log")" = 2 ]'
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "a FIFO as the access log: with no reader exit 2 at once, one line; with one, the lines flow" {
	mkfifo "$T/fifo"
	run timeout -k 5 20 "$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/fifo" -m off
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "$output" = "meshlens: --access-log '$T/fifo': a FIFO no process reads" ]
	[ -z "$(cgroup_attached "$CG")" ]
	# a reader that never sees EOF (it holds a write end too)
	exec 4<>"$T/fifo"
	cat <&4 >"$T/fifo.out" &
	reader=$!
	exec 4<&-
	start_daemon -o "$T/fifo"
	traffic many 127.0.0.1 2
	wait_for '[ "$(lines_in "$T/fifo.out")" = 4 ]'
	stop_daemon
	kill "$reader"
	cp "$T/fifo.out" "$T/access.log"
	check_conns
}

# host-only: user space alone, the same on every kernel (tests/vm/ leaves it out)
@test "SIGHUP reloads the config file: live keys apply (rotation here), the others are named as needing a restart; a bad file changes nothing" {
	echo '{"log_max_size_kb": 0}' >"$T/c.json"
	start_daemon -c "$T/c.json"
	traffic many 127.0.0.1 10
	wait_records 20
	echo '{"log_max_size_kb": 8, "log_max_files": 100, "ringbuf_bytes": 65536}' >"$T/c.json"
	kill -HUP "$DAEMON_PID"
	wait_for 'grep -q "config reloaded from $T/c.json: applied log_max_size_kb, log_max_files; needs a restart: ringbuf_bytes$" "$T/daemon.err"'
	traffic many 127.0.0.1 100
	wait_for '[ -n "$(find "$T" -name "access.log.*")" ]'
	# a bad value: the rotation stays on, the daemon too
	echo '{"log_max_size_kb": "big"}' >"$T/c.json"
	kill -HUP "$DAEMON_PID"
	wait_for 'grep -q "reloading config: .*log_max_size_kb.*(nothing changed)$" "$T/daemon.err"'
	# the same file again: only what still differs from the running daemon
	echo '{"log_max_size_kb": 8, "log_max_files": 100, "ringbuf_bytes": 65536}' >"$T/c.json"
	kill -HUP "$DAEMON_PID"
	wait_for 'grep -q "config reloaded from $T/c.json: applied nothing; needs a restart: ringbuf_bytes$" "$T/daemon.err"'
	traffic many 127.0.0.1 10
	stop_daemon
	[ "$(grep -c "config reloaded" "$T/daemon.err")" = 2 ]
	# every line exactly once over the rotated files and the live one
	{ for f in $(cd "$T" && find . -name 'access.log.*' -printf '%f\n' | sort -t. -k3,3nr); do
		zcat -f "$T/$f"; done
	  cat "$T/access.log"; } >"$T/all.log"
	[ "$(wc -l <"$T/all.log")" = 240 ]
	mv "$T/all.log" "$T/access.log"
	check_conns
}

@test "an observed cgroup removed: said once on stderr and by /healthz (still 200), the daemon runs on" {
	mkdir "$CG/pod"
	echo '{"refresh_interval_ms": 200}' >"$T/c.json"
	MPORT=$(free_port)
	launch "$MESHLENS" --pin-path "$PIN" -g "$CG/pod" -o "$T/access.log" -m "127.0.0.1:$MPORT" -c "$T/c.json"
	[ "$(curl -sS --max-time 5 "http://127.0.0.1:$MPORT/healthz")" = ok ]
	rmdir "$CG/pod"
	wait_err "meshlens: --cgroup '$CG/pod' is gone: nothing below it is observed any more"
	[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz")" = 200 ]
	[ "$(curl -sS --max-time 5 "http://127.0.0.1:$MPORT/healthz")" = "ok: cgroup '$CG/pod' is gone: nothing below it is observed" ]
	kill -0 "$DAEMON_PID"
	stop_daemon
	[ "$(grep -c "is gone" "$T/daemon.err")" = 1 ]
}
