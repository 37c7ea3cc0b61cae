# Helpers of tests/e2e/deploy.bats.
# shellcheck shell=bash

# tmpdir: a scratch directory for the static tests (ml_setup makes its own)
tmpdir() {
	T=$(mktemp -d /tmp/meshlens-deploy.XXXXXX)
}

# need TOOL...: fail, saying how to get it, when a tool is missing
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null && continue
		echo "$t is not installed: make deps installs it (deploy/install-deps.sh TEST_PKGS)" >&2
		return 1
	done
}

# daemonset_caps / unit_caps: the capabilities granted, "BPF NET_ADMIN PERFMON"
daemonset_caps() {
	y2j "$DEPLOY/k8s/daemonset.yaml" | jq -r '.[0].spec.template.spec.containers[]
	  | select(.name == "meshlens") | .securityContext.capabilities.add | sort | join(" ")'
}

unit_caps() {
	sed -n 's/^CapabilityBoundingSet=//p' "$DEPLOY/systemd/meshlens.service" |
		tr ' ' '\n' | sed 's/^CAP_//' | sort | xargs
}

# setpriv_caps "BPF PERFMON ...": setpriv's --bounding-set argument for them
setpriv_caps() {
	local c out="-all"
	for c in $1; do out="$out,+${c,,}"; done
	echo "$out"
}

# ml_env: a private cgroup, pin path and temp dir (skips loudly without BPF)
ml_env() {
	ml_setup
	PIN=${PIN:-/sys/fs/bpf/meshlens-e2e-$$-$BATS_TEST_NUMBER}
}

# start_ml [--caps "BPF ..."] ARGS...: meshlens on $CG, pinned under $PIN,
# stderr to $T/daemon.err, optionally with only the given capabilities;
# waits for "ready"
start_ml() {
	local pre=()
	if [ "$1" = --caps ]; then
		pre=(setpriv "--bounding-set=$(setpriv_caps "$2")" --inh-caps=-all --ambient-caps=-all)
		shift 2
	fi
	launch "${pre[@]}" "$MESHLENS" --pin-path "$PIN" -g "$CG" "$@"
}

# scrape PORT FILE: GET /metrics into FILE
scrape() {
	curl -sSf --max-time 5 -o "$2" "http://127.0.0.1:$1/metrics"
}

# wait_conns N: wait (up to 5 s) until the access log has N connection
# records (with --drops, drop lines of the whole node share the log)
wait_conns() {
	local n=$1 got=0
	for _ in $(seq 50); do
		got=$(jq -c 'select(.type == null)' "$T/access.log" 2>/dev/null | wc -l)
		[ "$got" -ge "$n" ] && return 0
		sleep 0.1
	done
	echo "expected $n connection records, the access log has $got" >&2
	return 1
}

# some_traffic: connections with both directions' bytes, a refused connect
# (a failure, and a NO_SOCKET drop with --drops)
some_traffic() {
	traffic many 127.0.0.1 5 --base-bytes 1000
	"$MLTRAFFIC" --cgroup "$CG" connect 127.0.0.1 9 >>"$T/truth.json"
}
