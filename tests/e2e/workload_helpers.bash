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

# Kiali's grouping of TCP edges (graph/telemetry/istio/istio.go, tcpGroupBy)
# shellcheck disable=SC2034 # used by workload.bats
KIALI_TCP_BY="source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,response_flags"

# write_istio_md: a client at 127.0.0.1 and a server at 127.0.0.2, each
# with Istio's identity (the client without a canonical revision)
write_istio_md() {
	cat >"$T/md.json" <<-EOF
	{"workloads": [
	  {"ips": ["127.0.0.2"], "workload": "srv", "namespace": "ns-srv", "service": "svc-srv",
	   "canonical_service": "srv-canon", "canonical_revision": "v2", "app": "srv-app",
	   "version": "v2", "cluster": "c1", "principal": "spiffe://cluster.local/ns/ns-srv/sa/srv"},
	  {"ips": ["127.0.0.1"], "workload": "cli", "namespace": "ns-cli", "canonical_service": "cli-canon",
	   "app": "cli-app", "version": "v1", "cluster": "c1", "principal": "spiffe://cluster.local/ns/ns-cli/sa/cli"}
	]}
	EOF
}

# kiali_edge_ok RESULT: one TCP edge cli -> srv with Kiali's labels
kiali_edge_ok() {
	jq -e 'length == 1 and (.[0].metric | .source_workload == "cli" and
	  .source_workload_namespace == "ns-cli" and .source_canonical_service == "cli-canon" and
	  .source_canonical_revision == "latest" and .destination_workload == "srv" and
	  .destination_workload_namespace == "ns-srv" and .destination_service_namespace == "ns-srv" and
	  .destination_service == "svc-srv.ns-srv.svc.cluster.local" and
	  .destination_service_name == "svc-srv" and .destination_canonical_service == "srv-canon" and
	  .destination_canonical_revision == "v2" and .response_flags == "-")' <<<"$1" >/dev/null ||
	  { echo "not Kiali's edge: $1" >&2; return 1; }
}
