# perf script --show-task-events -F comm,tid,period,ip,sym (from perf record
# -a -g, cpu-clock) -> where the CPU time of a storm of `conns` connections
# goes, meshlens's BPF programs in particular.
#   awk -v conns=N -v top=PID -v daemon=PID -f perf_summary.awk
# top is the storm's process; its forked server is found through the fork
# events. Only samples of those processes (and of the daemon, and of the
# kthread that frees socket storage) count, so other processes on the
# machine, other meshlens instances included, do not. cpu-clock periods are
# nanoseconds: each sample weighs its period, figures are ns of CPU per
# connection and shares of the storm processes' own CPU time.
function flush(   i, p, h) {
	if (comm == "")
		return
	if (tid in want) {
		storm += w
		for (i = 1; i <= n; i++) {
			if (fr[i] ~ /^bpf_prog_[0-9a-f]+_ml_/) {
				p = fr[i]
				sub(/^bpf_prog_[0-9a-f]+_/, "", p)
				h = i == 1 ? "(program code)" : fr[i - 1]
				if (h ~ /^bpf_sk_storage_|^bpf_local_storage|^bpf_selem/)
					st += w
				prog[p] += w
				helper[p " -> " h] += w
				bpf += w
				break
			}
		}
	} else if (tid == daemon) {
		dmn += w
	} else if (comm ~ /^rcu_tasks_trace/) {
		rcutt += w
	}
	n = 0
	comm = ""
}
BEGIN { want[top] = 1 }
/PERF_RECORD_FORK\(/ {
	flush()
	if (match($0, /FORK\([0-9]+:[0-9]+\):\([0-9]+:/)) {
		s = substr($0, RSTART + 5, RLENGTH - 6)
		split(s, a, /[():]+/)	# child, childtid, parent
		if (a[3] in want)
			want[a[1]] = want[a[2]] = 1
	}
	next
}
/PERF_RECORD_/ { flush(); next }
/^[^ \t]/ { flush(); comm = $1; tid = $2; w = $NF + 0; next }
/^[ \t]*$/ { flush(); next }
{ n++; fr[n] = $2 }
END {
	flush()
	if (!storm || !conns)
		exit
	printf("%7.0f ns  %5.1f%%  storm processes (client + server, user + kernel)\n", storm / conns, 100)
	printf("%7.0f ns  %5.1f%%  all ml_* BPF programs\n", bpf / conns, 100 * bpf / storm)
	for (p in prog)
		printf("%7.0f ns  %5.1f%%  program %s\n", prog[p] / conns, 100 * prog[p] / storm, p)
	printf("%7.0f ns  %5.1f%%  in sk_storage helpers (get/create, delete) of those\n", st / conns, 100 * st / storm)
	for (h in helper)
		if (helper[h] * 500 >= storm)
			printf("%7.0f ns  %5.1f%%  %s\n", helper[h] / conns, 100 * helper[h] / storm, h)
	printf("%7.0f ns  %5.1f%%  rcu_tasks_trace kthread (deferred frees of socket storage)\n", rcutt / conns, 100 * rcutt / storm)
	if (daemon)
		printf("%7.0f ns  %5.1f%%  meshlens daemon\n", dmn / conns, 100 * dmn / storm)
}
