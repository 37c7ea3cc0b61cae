# Helpers of tests/e2e/workload.bats.
# shellcheck shell=bash

# write_md WL_IP WL_CG [FILE]: 127.0.0.1 is WL_IP, the test cgroup WL_CG;
# written to a temp file then renamed over FILE (default $T/md.json)
write_md() {
	local f=${3:-$T/md.json}
	cat >"$f.tmp" <<-EOF
	{"workloads": [
	  {"ips": ["127.0.0.1"], "workload": "$1", "namespace": "ns-$1", "service": "svc-$1"},
	  {"ips": ["127.0.0.0/8"], "workload": "wide", "namespace": "ns-wide"},
	  {"cgroups": ["$CGREL"], "workload": "$2", "namespace": "ns-$2", "service": "svc-$2"}
	]}
	EOF
	mv "$f.tmp" "$f"
}

# names_ok IP CG: every record of the jq-selected set names both ends right
# (outbound socket: client = cgroup, server = address; inbound: reversed)
names_ok() {
	jq -e -s --arg a "$1" --arg b "$2" --arg cg "$CGREL" '
	  length > 0 and all(.[];
	    .cgroup == $cg and
	    (if .direction == "outbound"
	     then .src_workload == $b and .src_namespace == "ns-" + $b
	          and .dst_workload == $a and .dst_namespace == "ns-" + $a
	          and .dst_service == "svc-" + $a
	     else .src_workload == $a and .src_namespace == "ns-" + $a
	          and .dst_workload == $b and .dst_namespace == "ns-" + $b
	          and .dst_service == "svc-" + $b end)
	    and (has("src_service") | not))'
}

# wl DIRECTION SRC DST: label matchers of one workload series (namespaces ns-<name>)
wl() {
	echo "direction=\"$1\" src_workload=\"$2\" src_namespace=\"ns-$2\"" \
		"dst_workload=\"$3\" dst_namespace=\"ns-$3\""
}
