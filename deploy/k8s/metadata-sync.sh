#!/usr/bin/env bash
# metadata-sync.sh: writes meshlens's workload metadata file (DESIGN.md,
# "Workload metadata file") for the pods of one node, from the Kubernetes API.
#
#   {"workloads": [{"ips": [...], "cgroups": [...], "workload": "...",
#                   "namespace": "...", "service": "...", "node": "...",
#                   "canonical_service": "...", "canonical_revision": "...",
#                   "app": "...", "version": "...", "cluster": "...",
#                   "principal": "..."}]}
#
# One entry per pod of the node that is not finished (phase Succeeded or
# Failed):
#   ips        status.podIPs; none for hostNetwork pods (their IPs are the
#              node's, and would name every connection of the node)
#   cgroups    the pod's cgroup, relative to the cgroup v2 root, as the
#              kubelet names it (--cgroup-driver systemd, the default, or
#              cgroupfs), from metadata.uid and status.qosClass
#   workload   the controller: a Deployment's name for a ReplicaSet's pod
#              (the pod-template-hash suffix removed), the StatefulSet,
#              DaemonSet or Job name, the static pod's name without the
#              node suffix, or the pod name for a bare pod
#   service    the first (by name) Service of the namespace whose selector
#              matches the pod's labels; left out when none does
#   node       spec.nodeName
# and the names of Istio's standard metrics, derived as Istio derives them
# (a label with an empty value counts as absent):
#   canonical_service   label service.istio.io/canonical-name, else
#              app.kubernetes.io/name, else app, else the workload
#   canonical_revision  label service.istio.io/canonical-revision, else
#              app.kubernetes.io/version, else version, else "latest"
#   app        label app, else app.kubernetes.io/name; left out if neither
#   version    label version, else app.kubernetes.io/version; left out if
#              neither
#   cluster    --cluster; left out without it
#   principal  spiffe://<--trust-domain>/ns/<namespace>/sa/<spec.serviceAccountName,
#              "default" if none>
# meshlens takes names of 1 to 253 bytes: a longer one is left out (not
# cut: a cut name would be a wrong name), and so is an empty one.
#
# The file is replaced atomically (written beside it, then renamed over
# it), and only when its content changes. If the first read of the API
# fails and there is no file yet, an empty list is written, so that a
# meshlens waiting for the file can start; the next good read fills it.
#
# In the DaemonSet this runs as a sidecar (reads the API every --interval
# seconds, with the pod's service account). It also runs offline on a dump,
# which is how the tests run it:
#   kubectl get pods,services -A -o json >dump.json
#   deploy/k8s/metadata-sync.sh --from-file dump.json --node node-1 --output -
#
# Exit status: 0 done, 1 run-time failure, 2 bad usage.
set -euo pipefail

prog=${0##*/}
node=${NODE_NAME:-}
output=/run/meshlens/metadata/workloads.json
from_file=""
once=false
interval=30
driver=systemd
cluster=${MESHLENS_CLUSTER:-}
trust_domain=cluster.local

usage() {
	cat <<EOF
Usage: $prog [options]   (--opt VALUE or --opt=VALUE)
  --node NAME            only the pods of this node (default: \$NODE_NAME;
                         required when reading the API)
  --output FILE          metadata file to write ('-' = stdout)
                         (default: /run/meshlens/metadata/workloads.json)
  --from-file FILE       read a 'kubectl get pods,services -A -o json' dump
                         instead of the API, write once and exit
  --once                 read the API once, write, and exit
  --interval SECONDS     seconds between two reads of the API (default 30)
  --cgroup-driver D      the kubelet's cgroup driver: systemd (default) or cgroupfs
  --cluster NAME         the cluster's name, for Istio's source_/destination_cluster
                         (default: \$MESHLENS_CLUSTER; none: left out)
  --trust-domain DOMAIN  the SPIFFE trust domain of the pods' principals
                         (spiffe://DOMAIN/ns/NS/sa/SA; default cluster.local)
  -h, --help             print this help and exit
EOF
}

die_usage() {
	echo "$prog: $1 (see --help)" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;; # --opt=value, as the DaemonSet passes them
	--node | --output | --from-file | --interval | --cgroup-driver | --cluster | --trust-domain)
		[ $# -ge 2 ] || die_usage "$1 needs a value"
		case $1 in
		--node) node=$2 ;;
		--output) output=$2 ;;
		--from-file) from_file=$2 ;;
		--interval) interval=$2 ;;
		--cgroup-driver) driver=$2 ;;
		--cluster) cluster=$2 ;;
		--trust-domain) trust_domain=$2 ;;
		esac
		shift 2
		;;
	--once) once=true; shift ;;
	-h | --help) usage; exit 0 ;;
	*) die_usage "unknown option '$1'" ;;
	esac
done

case $driver in systemd | cgroupfs) ;; *) die_usage "--cgroup-driver '$driver': systemd or cgroupfs" ;; esac
case $interval in '' | *[!0-9]* | 0) die_usage "--interval '$interval': a whole number of seconds > 0" ;; esac
case $trust_domain in '' | */*) die_usage "--trust-domain '$trust_domain': a domain name, without '/'" ;; esac
[ -n "$output" ] || die_usage "--output needs a file or '-'"
[ -n "$from_file" ] || [ -n "$node" ] || die_usage "no node: set NODE_NAME or --node"
[ "$(printf %s "$cluster" | wc -c)" -le 253 ] ||
	echo "$prog: --cluster is longer than 253 bytes, more than meshlens takes: left out of the file" >&2
command -v jq >/dev/null || { echo "$prog: jq is not installed" >&2; exit 1; }

# The input: one JSON document holding Pods and Services (kind on each
# item), as a List (kubectl get -o json), an array, or a single object.
# shellcheck disable=SC2016 # jq's own $variables
TRANSFORM='
def items: if type == "array" then .[]
           elif (.items | type) == "array" then .items[]
           else . end;
def controller: [(.metadata.ownerReferences // [])[] | select(.controller == true)] | first;
def workload:
  . as $p | controller as $c
  | if $c == null then $p.metadata.name
    elif $c.kind == "ReplicaSet" and (($p.metadata.labels // {})["pod-template-hash"] // "") != ""
      then $c.name | rtrimstr("-" + $p.metadata.labels["pod-template-hash"])
    elif $c.kind == "Node" then $p.metadata.name | rtrimstr("-" + ($p.spec.nodeName // ""))
    else $c.name end;
def pod_cgroups:
  (.metadata.uid // "") as $uid | (.status.qosClass // "" | ascii_downcase) as $qos
  | if $uid == "" or $qos == "" then []
    elif $driver == "systemd" then
      ($uid | gsub("-"; "_")) as $u
      | if $qos == "guaranteed" then ["kubepods.slice/kubepods-pod\($u).slice"]
        else ["kubepods.slice/kubepods-\($qos).slice/kubepods-\($qos)-pod\($u).slice"] end
    else
      if $qos == "guaranteed" then ["kubepods/pod\($uid)"]
      else ["kubepods/\($qos)/pod\($uid)"] end
    end;
def pod_ips:
  if .spec.hostNetwork == true then []
  else [(.status.podIPs // [])[].ip, (.status.podIP // empty)] | unique end;
# the value of the first of the labels $ks the pod has, not empty; or null
def label_of($ks):
  (.metadata.labels // {}) as $l | [$ks[] | $l[.] | strings | select(. != "")] | first;
# {$k: $v} when meshlens takes $v as a name (1 to 253 bytes), else {}
def name($k; $v):
  if ($v | type) == "string" and $v != "" and ($v | utf8bytelength) <= 253
  then {($k): $v} else {} end;
# the keys of the Istio metrics of the pod, whose workload is $wl
def istio($wl):
  name("canonical_service";
       label_of(["service.istio.io/canonical-name", "app.kubernetes.io/name", "app"]) // $wl)
  + name("canonical_revision";
         label_of(["service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"])
         // "latest")
  + name("app"; label_of(["app", "app.kubernetes.io/name"]))
  + name("version"; label_of(["version", "app.kubernetes.io/version"]))
  + name("cluster"; $cluster)
  + name("principal";
         "spiffe://\($trust_domain)/ns/\(.metadata.namespace)/sa/\(
           [.spec.serviceAccountName | strings | select(. != "")] | first // "default")");
def selects($pod):
  .metadata.namespace == $pod.metadata.namespace
  and (.spec.selector | to_entries | all(.value == (($pod.metadata.labels // {})[.key])));

[items] as $all
| [$all[] | select(.kind == "Service" and ((.spec.selector // {}) | length) > 0)]
  | sort_by(.metadata.name) as $services
| {workloads: [
    $all[]
    | select(.kind == "Pod")
    | select($node == "" or .spec.nodeName == $node)
    | select(.status.phase != "Succeeded" and .status.phase != "Failed")
    | . as $pod
    | ([$services[] | select(selects($pod)) | .metadata.name] | first) as $svc
    | workload as $wl
    | {ips: pod_ips, cgroups: pod_cgroups, workload: $wl,
       namespace: .metadata.namespace}
      + (if $svc == null then {} else {service: $svc} end)
      + {node: (.spec.nodeName // "")}
      + istio($wl)
  ] | sort_by(.namespace, .workload, .cgroups)}
'

# transform FILE: the metadata document of FILE's pods and services
transform() {
	jq --arg node "$node" --arg driver "$driver" --arg cluster "$cluster" \
		--arg trust_domain "$trust_domain" "$TRANSFORM" "$1"
}

# publish JSON: write the metadata file atomically, if its content changed
publish() {
	local json=$1 dir tmp
	if [ "$output" = - ]; then
		printf '%s\n' "$json"
		return 0
	fi
	if [ -f "$output" ] && [ "$(cat "$output")" = "$json" ]; then
		return 0
	fi
	dir=$(dirname "$output")
	mkdir -p "$dir"
	tmp=$(mktemp "$dir/.${output##*/}.XXXXXX")
	if printf '%s\n' "$json" >"$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$output"; then
		echo "$prog: wrote $output ($(jq '.workloads | length' <<<"$json") workloads)" >&2
		return 0
	fi
	rm -f "$tmp"
	return 1
}

# api_get PATH: GET an API path; in a pod with its service account token
# (curl), else with the local kubeconfig (kubectl get --raw)
SA=/var/run/secrets/kubernetes.io/serviceaccount
api_get() {
	if [ -r "$SA/token" ] && [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && command -v curl >/dev/null; then
		local host=$KUBERNETES_SERVICE_HOST
		case $host in *:*) host="[$host]" ;; esac
		curl -sSf --max-time 30 --cacert "$SA/ca.crt" \
			-H "Authorization: Bearer $(cat "$SA/token")" \
			"https://$host:${KUBERNETES_SERVICE_PORT:-443}$1"
	elif command -v kubectl >/dev/null; then
		kubectl get --raw "$1"
	else
		echo "$prog: neither a service account with curl nor kubectl to reach the API" >&2
		return 1
	fi
}

# sync_from_api: one read of the API (served from the API server's cache:
# resourceVersion=0), one publish
sync_from_api() {
	local dir json rc=1
	dir=$(mktemp -d)
	if api_get "/api/v1/pods?fieldSelector=spec.nodeName%3D$node&resourceVersion=0" >"$dir/pods" &&
		api_get "/api/v1/services?resourceVersion=0" >"$dir/services" &&
		json=$(jq -n --slurpfile p "$dir/pods" --slurpfile s "$dir/services" \
			'{kind: "List", items: (($p[0].items | map(.kind = "Pod"))
			                        + ($s[0].items | map(.kind = "Service")))}' |
			transform /dev/stdin); then
		publish "$json" && rc=0
	fi
	rm -rf "$dir"
	return "$rc"
}

if [ -n "$from_file" ]; then
	[ -r "$from_file" ] || { echo "$prog: cannot read '$from_file'" >&2; exit 1; }
	json=$(transform "$from_file") || { echo "$prog: '$from_file' is not a kubectl JSON dump" >&2; exit 1; }
	publish "$json"
	exit
fi

if $once; then
	sync_from_api
	exit
fi

sleeper=""
trap '[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT
while :; do
	if ! sync_from_api; then
		if [ "$output" != - ] && [ ! -e "$output" ]; then
			# meshlens may wait for the file: give it one, without identities
			echo "$prog: reading the API failed; writing an empty list for now" >&2
			publish '{"workloads": []}' || true
		else
			echo "$prog: reading the API failed; the previous file stays" >&2
		fi
	fi
	sleep "$interval" &
	sleeper=$!
	wait "$sleeper" || true
	sleeper=""
done
