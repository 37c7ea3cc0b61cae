#!/usr/bin/env bats
# Deployment files (deploy/). There is no Kubernetes cluster and no
# container engine here: manifests, kustomization and Containerfile are
# checked statically (they parse, render, reference what exists, grant what
# the comments say). Everything that can run here runs for real: the daemon
# with exactly the capabilities the DaemonSet and the unit grant (and
# without each one of them), every syscall it makes against the unit's
# filter, every dashboard query on a real Prometheus scraping it with
# deploy/prometheus/scrape.yml, a logrotate rotation with the shipped
# config, metadata-sync.sh on a kubectl dump and on a stubbed API, and the
# Containerfile's build stage from exactly the files it copies.

load helpers
load deploy_helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
DEPLOY=$ROOT/deploy
DASHBOARD=$DEPLOY/grafana/meshlens-dashboard.json
FIXTURE=$DEPLOY/k8s/testdata/pods-services.json
SYNC=$DEPLOY/k8s/metadata-sync.sh

# Scripts with shellcheck findings that are not ours to fix yet; the test
# says when one of them has become clean.
SHELLCHECK_EXCLUDE=()

setup() {
	T=""
	CG=""
	PIN=""
	DAEMON_PID=""
	PROM_PID=""
	STRACE_PID=""
	LINKED=""
}

teardown() {
	# a traced daemon: strace ignores SIGTERM, its child does not
	if [ -n "$STRACE_PID" ] && [ -z "$DAEMON_PID" ]; then
		DAEMON_PID=$(pgrep -P "$STRACE_PID" || true)
	fi
	if [ -n "$PROM_PID" ]; then
		kill -TERM "$PROM_PID" 2>/dev/null || true
		wait "$PROM_PID" 2>/dev/null || true
	fi
	if [ -n "$CG" ] && [ -e "$CG/cgroup.kill" ]; then
		echo 1 >"$CG/cgroup.kill" 2>/dev/null || true
	fi
	[ -z "$LINKED" ] || rm -f /usr/local/bin/meshlens
	ml_teardown
	# pins of a daemon that could not --detach them (an older meshlens)
	if [ -n "$PIN" ] && [ -d "$PIN" ]; then
		"$MESHLENS" --detach --pin-path "$PIN" >/dev/null 2>&1 || rm -rf "$PIN"
	fi
	return 0
}

# --- helpers of this file ----------------------------------------------------

# y2j FILE: the YAML documents of FILE as one JSON array
y2j() {
	/usr/bin/python3 -c 'import sys, json, yaml
json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)' "$1"
}

# --- YAML, configs, kustomize ----------------------------------------------------

@test "every YAML file under deploy/ passes yamllint (relaxed rules, warnings fail)" {
	need yamllint
	run yamllint --strict -d relaxed "$DEPLOY"
	echo "$output"
	[ "$status" = 0 ]
	# and there is something to lint
	[ "$(find "$DEPLOY" -name '*.yaml' -o -name '*.yml' | wc -l)" -ge 6 ]
}

@test "config files: exactly the keys of meshlens --gen-config, and meshlens reads them back unchanged" {
	local f want
	want=$("$MESHLENS" --gen-config | jq -c 'keys_unsorted')
	for f in "$DEPLOY/k8s/config.json" "$DEPLOY/systemd/config.json"; do
		echo "$f"
		[ "$(jq -c 'keys_unsorted' "$f")" = "$want" ]
		# the daemon's own parser: -c FILE --gen-config prints the config it read
		run "$MESHLENS" -c "$f" --gen-config
		[ "$status" = 0 ]
		[ "$(jq -S . <<<"$output")" = "$(jq -S . "$f")" ]
	done
	# the deployments: the node's pods, loopback metrics, pins in the host's bpffs
	[ "$(jq -c .cgroups "$DEPLOY/k8s/config.json")" = '["kubepods.slice"]' ]
	[ "$(jq -r .access_log "$DEPLOY/k8s/config.json")" = - ]
	[ "$(jq -r .access_log "$DEPLOY/systemd/config.json")" = /var/log/meshlens/access.log ]
	for f in "$DEPLOY/k8s/config.json" "$DEPLOY/systemd/config.json"; do
		[[ "$(jq -r .metrics_addr "$f")" == 127.0.0.1:* ]]
		[[ "$(jq -r .pin_path "$f")" == /sys/fs/bpf/* ]]
	done
}

@test "kustomization renders (kubectl kustomize), or at least names only files that exist" {
	local k=$DEPLOY/k8s/kustomization.yaml f
	tmpdir
	# the files it names, whatever renders it
	for f in $(y2j "$k" | jq -r '.[0] | (.resources[]?, (.configMapGenerator[]?.files[]?))'); do
		echo "kustomization names $f"
		[ -f "$DEPLOY/k8s/$f" ]
	done
	if ! command -v kubectl >/dev/null; then
		echo "# kubectl is not installed (no Debian package): kustomization checked by its file list only" >&3
		return 0
	fi
	kubectl kustomize "$DEPLOY/k8s" >"$T/rendered.yaml"
	yamllint --strict -d relaxed "$T/rendered.yaml"
	y2j "$T/rendered.yaml" >"$T/r.json"
	[ "$(jq -r '[.[].kind] | sort | unique | join(" ")' "$T/r.json")" = \
	  "ClusterRole ClusterRoleBinding ConfigMap DaemonSet Namespace Service ServiceAccount" ]
	# namespaced objects land in meshlens
	[ "$(jq -r '[.[] | select(.kind | IN("Namespace", "ClusterRole", "ClusterRoleBinding") | not)
	             | .metadata.namespace] | unique | join(" ")' "$T/r.json")" = meshlens ]
	# the DaemonSet mounts the generated ConfigMap (hashed name), which holds config.json as is
	cm=$(jq -r '.[] | select(.kind == "ConfigMap") | .metadata.name' "$T/r.json")
	[[ "$cm" == meshlens-config-* ]]
	[ "$(jq -r '.[] | select(.kind == "DaemonSet") | .spec.template.spec.volumes[]
	            | select(.name == "config") | .configMap.name' "$T/r.json")" = "$cm" ]
	jq -r '.[] | select(.kind == "ConfigMap") | .data["config.json"]' "$T/r.json" >"$T/config.json"
	[ "$(jq -S . "$T/config.json")" = "$(jq -S . "$DEPLOY/k8s/config.json")" ]
	# images come from the images: list
	[ "$(jq -r '[.[] | select(.kind == "DaemonSet") | .spec.template.spec | (.initContainers + .containers)[].image]
	            | join(" ")' "$T/r.json")" = \
	  "localhost/meshlens-metadata-sync:latest localhost/meshlens:latest quay.io/brancz/kube-rbac-proxy:v0.19.1" ]
}

@test "DaemonSet: least privilege (not privileged, drop ALL, only BPF PERFMON NET_ADMIN), host mounts, probes, resources" {
	tmpdir
	# every container, the native sidecar (an init container) included
	y2j "$DEPLOY/k8s/daemonset.yaml" |
		jq '.[0].spec.template.spec | .all = (.containers + (.initContainers // []))' >"$T/pod.json"
	[ "$(jq '.all | length' "$T/pod.json")" = 3 ]
	ml() { jq -c "(.containers[] | select(.name == \"meshlens\")) | $1" "$T/pod.json"; }
	# no container is privileged or may escalate; every one drops ALL
	[ "$(jq '[.all[] | select(.securityContext.privileged == true)] | length' "$T/pod.json")" = 0 ]
	[ "$(jq '[.all[] | select(.securityContext.allowPrivilegeEscalation != false)] | length' "$T/pod.json")" = 0 ]
	[ "$(jq '[.all[] | select(.securityContext.capabilities.drop != ["ALL"])] | length' "$T/pod.json")" = 0 ]
	[ "$(jq '[.all[] | select(.securityContext.readOnlyRootFilesystem != true)] | length' "$T/pod.json")" = 0 ]
	# only meshlens adds capabilities, only these; it runs as root (it must), the others do not
	[ "$(daemonset_caps)" = "BPF NET_ADMIN PERFMON" ]
	[ "$(jq '[.all[] | select(.name != "meshlens") | .securityContext
	          | select(.capabilities.add or .runAsNonRoot != true)] | length' "$T/pod.json")" = 0 ]
	[ "$(ml .securityContext.runAsUser)" = 0 ]
	[ "$(jq -r '.securityContext.seccompProfile.type' "$T/pod.json")" = RuntimeDefault ]
	# no host PID/IPC; host network (documented in the file)
	[ "$(jq -c '[.hostNetwork, .hostPID, .hostIPC]' "$T/pod.json")" = '[true,false,false]' ]
	# bpffs HostToContainer (Bidirectional needs privileged), cgroup and BTF read-only
	[ "$(ml '.volumeMounts[] | select(.mountPath == "/sys/fs/bpf") | [.mountPropagation, (.readOnly // false)]')" = '["HostToContainer",false]' ]
	[ "$(ml '.volumeMounts[] | select(.mountPath == "/sys/fs/cgroup") | .readOnly')" = true ]
	[ "$(ml '.volumeMounts[] | select(.mountPath == "/sys/kernel/btf") | .readOnly')" = true ]
	[ "$(jq -c '[.volumes[] | select(.hostPath) | .hostPath.path] | sort' "$T/pod.json")" = '["/sys/fs/bpf","/sys/fs/cgroup","/sys/kernel/btf"]' ]
	# probes: /healthz on the loopback address and port of config.json's metrics_addr
	addr=$(jq -r .metrics_addr "$DEPLOY/k8s/config.json")
	for p in startupProbe readinessProbe livenessProbe; do
		[ "$(ml ".$p.httpGet | \"\(.host):\(.port)\(.path)\"")" = "\"$addr/healthz\"" ]
	done
	# the metrics proxy forwards to that address, /metrics only, on the Service's port
	[ "$(jq -r '.containers[] | select(.name == "metrics-proxy") | .args[]' "$T/pod.json" | grep -c -x -e "--upstream=http://$addr/" -e "--allow-paths=/metrics")" = 2 ]
	y2j "$DEPLOY/k8s/service.yaml" >"$T/svc.json"
	port=$(jq -r '.[0].spec.ports[0].port' "$T/svc.json")
	[ "$(jq -r '.containers[] | select(.name == "metrics-proxy") | .ports[0] | "\(.name) \(.containerPort)"' "$T/pod.json")" = "https-metrics $port" ]
	[ "$(jq -r '.[0].spec.clusterIP' "$T/svc.json")" = None ]
	[ "$(jq -r '.[0].metadata.annotations | "\(.["prometheus.io/scrape"]) \(.["prometheus.io/scheme"]) \(.["prometheus.io/port"])"' "$T/svc.json")" = "true https $port" ]
	[ "$(y2j "$DEPLOY/k8s/servicemonitor.yaml" | jq -r '.[0].spec.endpoints[0] | "\(.port) \(.scheme)"')" = "https-metrics https" ]
	# every container has requests and a memory limit
	[ "$(jq '[.all[] | select(.resources.requests.cpu and .resources.requests.memory and .resources.limits.memory | not)] | length' "$T/pod.json")" = 0 ]
	# metadata-sync shares its output directory with meshlens, read-only there;
	# a native sidecar whose startup probe waits for the file
	[ "$(ml '.volumeMounts[] | select(.name == "metadata") | [.mountPath, .readOnly]')" = '["/run/meshlens/metadata",true]' ]
	jq '.initContainers[] | select(.name == "metadata-sync")' "$T/pod.json" >"$T/sync.json"
	[ "$(jq -r '.restartPolicy' "$T/sync.json")" = Always ]
	out=$(jq -r '.args[] | select(startswith("--output=")) | ltrimstr("--output=")' "$T/sync.json")
	[ "$out" = /run/meshlens/metadata/workloads.json ]
	[ "$(jq -c '.startupProbe.exec.command' "$T/sync.json")" = "[\"test\",\"-s\",\"$out\"]" ]
	# when meshlens reads it, it reads that file
	md=$(jq -r .metadata "$DEPLOY/k8s/config.json")
	[ "$md" = null ] || [ "$md" = "$out" ]
}

# --- metadata-sync.sh ------------------------------------------------------------

@test "metadata-sync.sh on a kubectl dump: this node's live pods, with IPs, cgroups, workload, namespace, service, Istio's names" {
	tmpdir
	run "$SYNC" --from-file "$FIXTURE" --node node-1 --output "$T/md/workloads.json"
	echo "$output"
	[ "$status" = 0 ]
	f=$T/md/workloads.json
	jq . "$f"
	# node-1's pods, without the finished job: 2 productpage, ratings-db, debug, kube-proxy
	[ "$(jq '.workloads | length' "$f")" = 5 ]
	[ "$(jq -r '[.workloads[].node] | unique | join(" ")' "$f")" = node-1 ]
	[ "$(jq '[.workloads[] | select(.workload == "report-28391040" or .workload == "ratings-v1")] | length' "$f")" = 0 ]
	# a Deployment's pod: both IPs, the systemd cgroup of a Burstable pod, the
	# Service; Istio's canonical labels beat app.kubernetes.io/* and app/version,
	# app and version come from app and version; the principal from its
	# service account; no --cluster: no cluster
	[ "$(jq -c '.workloads[] | select(.ips == ["10.244.1.7", "fd00::7"])' "$f")" = \
	  '{"ips":["10.244.1.7","fd00::7"],"cgroups":["kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8f2d1c3e_6a41_4b6f_9c1a_2f0e7d5b9a10.slice"],"workload":"productpage-v1","namespace":"bookinfo","service":"productpage","node":"node-1","canonical_service":"bookinfo-productpage","canonical_revision":"v1-canary","app":"productpage","version":"v1","principal":"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage"}' ]
	# app.kubernetes.io/name beats app for the canonical service, not for app;
	# no version label: app.kubernetes.io/version; no service account: "default"
	[ "$(jq -c '.workloads[] | select(.workload == "ratings-db") | del(.ips, .cgroups)' "$f")" = \
	  '{"workload":"ratings-db","namespace":"bookinfo","service":"ratings-db","node":"node-1","canonical_service":"mongodb","canonical_revision":"7.0.14","app":"ratings-db","version":"7.0.14","principal":"spiffe://cluster.local/ns/bookinfo/sa/default"}' ]
	# none of the labels: the workload's name, "latest", no app, no version
	[ "$(jq -c '.workloads[] | select(.workload == "debug") | del(.ips, .cgroups)' "$f")" = \
	  '{"workload":"debug","namespace":"default","node":"node-1","canonical_service":"debug","canonical_revision":"latest","principal":"spiffe://cluster.local/ns/default/sa/default"}' ]
	[ "$(jq -c '.workloads[] | select(.workload == "kube-proxy") | del(.ips, .cgroups)' "$f")" = \
	  '{"workload":"kube-proxy","namespace":"kube-system","node":"node-1","canonical_service":"kube-proxy","canonical_revision":"latest","principal":"spiffe://cluster.local/ns/kube-system/sa/kube-proxy"}' ]
	# never an empty value (meshlens refuses one), no cluster anywhere
	[ "$(jq '[.workloads[][] | select(. == "")] | length' "$f")" = 0 ]
	[ "$(jq '[.workloads[] | select(has("cluster"))] | length' "$f")" = 0 ]
	# a StatefulSet's Guaranteed pod sits right under kubepods.slice
	[ "$(jq -c '.workloads[] | select(.workload == "ratings-db") | [.cgroups, .service]' "$f")" = \
	  '[["kubepods.slice/kubepods-pod1a2b3c4d_5e6f_4a1b_9c2d_3e4f5a6b7c8d.slice"],"ratings-db"]' ]
	# a host-network static pod: the node's IP is not the pod's; no service
	[ "$(jq -c '.workloads[] | select(.namespace == "kube-system") | [.workload, .ips, has("service")]' "$f")" = '["kube-proxy",[],false]' ]
	# a bare pod is its own workload; a Service of another namespace does not name it
	[ "$(jq -c '.workloads[] | select(.namespace == "default") | [.workload, has("service")]' "$f")" = '["debug",false]' ]
	# a pending pod: no IP yet, its cgroup already known
	[ "$(jq '[.workloads[] | select(.workload == "productpage-v1" and .ips == [])] | length' "$f")" = 1 ]
	# written atomically: nothing else is left in the directory
	[ "$(ls -A "$T/md")" = workloads.json ]
}

@test "metadata-sync.sh: cgroupfs driver, no node filter, --cluster, --trust-domain, names over 253 bytes left out, --opt=value, atomic replace only on change, usage errors" {
	local long sa args
	tmpdir
	"$SYNC" --from-file "$FIXTURE" --cgroup-driver cgroupfs --cluster east-1 --trust-domain=mesh.example.org --output - >"$T/all.json"
	[ "$(jq '.workloads | length' "$T/all.json")" = 6 ]
	[ "$(jq -r '.workloads[] | select(.workload == "ratings-v1") | .cgroups[0]' "$T/all.json")" = \
	  kubepods/besteffort/pod9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b ]
	[ "$(jq -r '.workloads[] | select(.workload == "ratings-db") | .cgroups[0]' "$T/all.json")" = \
	  kubepods/pod1a2b3c4d-5e6f-4a1b-9c2d-3e4f5a6b7c8d ]
	# the DaemonSet's arguments (--opt=value) are taken
	mapfile -t args < <(y2j "$DEPLOY/k8s/daemonset.yaml" | jq -r '.[0].spec.template.spec.initContainers[] | select(.name == "metadata-sync") | .args[]')
	[ "${#args[@]}" -ge 2 ]
	"$SYNC" "${args[@]}" --from-file "$FIXTURE" --node node-1 --output - >"$T/ds.json"
	"$SYNC" --from-file "$FIXTURE" --node node-1 --output - | diff - "$T/ds.json"
	rm "$T/ds.json"
	# a pod with only app and version: they name its canonical service and revision
	[ "$(jq -c '.workloads[] | select(.workload == "ratings-v1") | del(.ips, .cgroups)' "$T/all.json")" = \
	  '{"workload":"ratings-v1","namespace":"bookinfo","service":"ratings","node":"node-2","canonical_service":"ratings","canonical_revision":"v1","app":"ratings","version":"v1","cluster":"east-1","principal":"spiffe://mesh.example.org/ns/bookinfo/sa/bookinfo-ratings"}' ]
	# --cluster on every workload; the trust domain in every principal
	[ "$(jq -r '[.workloads[].cluster] | unique | join(" ")' "$T/all.json")" = east-1 ]
	[ "$(jq '[.workloads[] | select(.namespace as $ns | .principal | startswith("spiffe://mesh.example.org/ns/\($ns)/sa/"))] | length' "$T/all.json")" = 6 ]
	# $MESHLENS_CLUSTER without --cluster; --cluster beats it
	[ "$(MESHLENS_CLUSTER=west-2 "$SYNC" --from-file "$FIXTURE" --node node-2 --output - | jq -r '.workloads[0].cluster')" = west-2 ]
	[ "$(MESHLENS_CLUSTER=west-2 "$SYNC" --from-file "$FIXTURE" --node node-2 --cluster c3 --output - | jq -r '.workloads[0].cluster')" = c3 ]
	# an empty --cluster is none
	[ "$(MESHLENS_CLUSTER= "$SYNC" --from-file "$FIXTURE" --node node-2 --cluster "" --output - | jq '.workloads[0] | has("cluster")')" = false ]
	# meshlens takes 1 to 253 bytes: longer names are left out, not cut (bytes,
	# not characters: 127 x "é" is 254 bytes); the other keys stay
	long=$(printf 'é%.0s' $(seq 127))
	sa=$(printf 's%.0s' $(seq 220))
	jq --arg long "$long" --arg sa "$sa" '(.items[] | select(.metadata.name == "ratings-v1-5c7f9d8b4-qw8rt"))
	    |= (.metadata.labels["service.istio.io/canonical-name"] = $long | .spec.serviceAccountName = $sa)' \
	    "$FIXTURE" >"$T/long.json"
	"$SYNC" --from-file "$T/long.json" --node node-2 --cluster "$(printf 'c%.0s' $(seq 254))" --output - \
	    >"$T/long.out" 2>"$T/long.err"
	grep -q -- '--cluster is longer than 253 bytes' "$T/long.err"
	[ "$(jq -c '.workloads[0] | del(.ips, .cgroups)' "$T/long.out")" = \
	  '{"workload":"ratings-v1","namespace":"bookinfo","service":"ratings","node":"node-2","canonical_revision":"v1","app":"ratings","version":"v1"}' ]
	# exactly 253 bytes is a name
	[ "$("$SYNC" --from-file "$FIXTURE" --node node-2 --cluster "$(printf 'c%.0s' $(seq 253))" --output - | jq '.workloads[0].cluster | utf8bytelength')" = 253 ]
	rm "$T/long.json" "$T/long.out" "$T/long.err"
	# same content: the file is left alone; new content: a new file renamed over it
	"$SYNC" --from-file "$FIXTURE" --node node-1 --output "$T/w.json" 2>/dev/null
	ino=$(stat -c %i "$T/w.json")
	"$SYNC" --from-file "$FIXTURE" --node node-1 --output "$T/w.json" 2>/dev/null
	[ "$(stat -c %i "$T/w.json")" = "$ino" ]
	"$SYNC" --from-file "$FIXTURE" --node node-2 --output "$T/w.json" 2>/dev/null
	[ "$(stat -c %i "$T/w.json")" != "$ino" ]
	[ "$(jq -r '.workloads[0].workload' "$T/w.json")" = ratings-v1 ]
	[ "$(ls -A "$T")" = "$(printf 'all.json\nw.json')" ]
	run "$SYNC" --bogus
	[ "$status" = 2 ]
	run env -u NODE_NAME "$SYNC" --once
	[ "$status" = 2 ]
	[[ "$output" == *"no node"* ]]
	run "$SYNC" --from-file "$FIXTURE" --cgroup-driver nope
	[ "$status" = 2 ]
	run "$SYNC" --from-file "$FIXTURE" --trust-domain ""
	[ "$status" = 2 ]
	run "$SYNC" --from-file "$FIXTURE" --trust-domain a/b
	[ "$status" = 2 ]
	run "$SYNC" --from-file "$FIXTURE" --cluster
	[ "$status" = 2 ]
	run "$SYNC" --from-file "$T/missing.json" --output -
	[ "$status" = 1 ]
}

@test "metadata-sync.sh reads the API (kubectl --raw, stubbed): its node's pods only, empty list while the API is down, rewrites on change, stops on SIGTERM" {
	tmpdir
	mkdir "$T/bin"
	echo "$FIXTURE" >"$T/fixture"
	# the stub answers like the API server: lists without a kind on each item
	cat >"$T/bin/kubectl" <<-EOF
	#!/usr/bin/env bash
	echo "\$*" >>"$T/kubectl.log"
	[ ! -e "$T/api-down" ] || exit 1
	[ "\$1 \$2" = "get --raw" ] || exit 1
	fixture=\$(cat "$T/fixture")
	case \$3 in
	"/api/v1/pods?fieldSelector=spec.nodeName%3D"*"&resourceVersion=0")
		node=\${3#*%3D}; node=\${node%%&*}
		jq --arg n "\$node" '{kind: "PodList", items: [.items[] | select(.kind == "Pod" and .spec.nodeName == \$n) | del(.kind)]}' "\$fixture" ;;
	"/api/v1/services?resourceVersion=0")
		jq '{kind: "ServiceList", items: [.items[] | select(.kind == "Service") | del(.kind)]}' "\$fixture" ;;
	*) exit 1 ;;
	esac
	EOF
	chmod +x "$T/bin/kubectl"
	export PATH="$T/bin:$PATH"
	unset KUBERNETES_SERVICE_HOST
	NODE_NAME=node-1 "$SYNC" --once --output "$T/md/w.json"
	"$SYNC" --from-file "$FIXTURE" --node node-1 --output "$T/want.json" 2>/dev/null
	diff "$T/want.json" "$T/md/w.json"
	grep -q 'fieldSelector=spec.nodeName%3Dnode-1&' "$T/kubectl.log"
	# the loop, the API down at first: an empty list at once, so that
	# meshlens can start; filled when the API answers
	touch "$T/api-down"
	NODE_NAME=node-1 "$SYNC" --interval 1 --output "$T/md2/w.json" 2>"$T/sync.err" &
	pid=$!
	for _ in $(seq 50); do [ -s "$T/md2/w.json" ] && break; sleep 0.1; done
	[ "$(cat "$T/md2/w.json")" = '{"workloads": []}' ]
	rm "$T/api-down"
	for _ in $(seq 50); do
		[ "$(jq '.workloads | length' "$T/md2/w.json")" = 5 ] && break
		sleep 0.1
	done
	[ "$(jq '.workloads | length' "$T/md2/w.json")" = 5 ]
	# a changed API answer replaces the file; SIGTERM ends it at once
	jq 'del(.items[] | select(.metadata.name == "debug"))' "$FIXTURE" >"$T/fixture2.json"
	echo "$T/fixture2.json" >"$T/fixture"
	for _ in $(seq 50); do
		[ "$(jq '.workloads | length' "$T/md2/w.json")" = 4 ] && break
		sleep 0.1
	done
	[ "$(jq '.workloads | length' "$T/md2/w.json")" = 4 ]
	kill -TERM "$pid"
	for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	run kill -0 "$pid"
	[ "$status" != 0 ]
	wait "$pid"
}

@test "meshlens reads what metadata-sync.sh writes: loopback connections named by a pod's IP" {
	ml_env
	# the fixture, with productpage's pod on 127.0.0.1
	jq '(.items[] | select(.metadata.name == "productpage-v1-6b746f74dc-x7k2p") | .status)
	    |= (.podIP = "127.0.0.1" | .podIPs = [{"ip": "127.0.0.1"}])' "$FIXTURE" >"$T/dump.json"
	"$SYNC" --from-file "$T/dump.json" --node node-1 --output "$T/md/workloads.json" 2>/dev/null
	start_ml --metadata "$T/md/workloads.json" -o "$T/access.log" -m off
	traffic many 127.0.0.1 2
	wait_conns 4
	jq -c . "$T/access.log"
	[ "$(jq -s 'map(select(.dst_workload == "productpage-v1" and .dst_namespace == "bookinfo"
	                       and .dst_service == "productpage" and .src_workload == "productpage-v1"))
	            | length' "$T/access.log")" = 4 ]
}

# --- shell scripts ------------------------------------------------------------

@test "shellcheck: every shell script of the repository is clean" {
	need shellcheck
	local f rel scripts=() bad=0 x skip
	while IFS= read -r f; do
		rel=${f#"$ROOT"/}
		case $rel in
		*.sh | *.bash) ;;
		*) head -n1 "$f" | grep -qE '^#!.*[/ ](ba|da)?sh$' || continue ;;
		esac
		scripts+=("$rel")
	done < <(find "$ROOT" \( -path "$ROOT/.git" -o -path "$ROOT/build" \) -prune -o -type f -print | sort)
	echo "scripts: ${scripts[*]}"
	[ "${#scripts[@]}" -ge 5 ]
	for rel in "${scripts[@]}"; do
		skip=""
		for x in "${SHELLCHECK_EXCLUDE[@]}"; do [ "$rel" = "$x" ] && skip=1; done
		if [ -n "$skip" ]; then
			(cd "$ROOT" && shellcheck -x "$rel" >/dev/null 2>&1) &&
				echo "# $rel is shellcheck-clean now: take it off SHELLCHECK_EXCLUDE in tests/e2e/deploy.bats" >&3
			continue
		fi
		(cd "$ROOT" && shellcheck -x "$rel") || bad=1
	done
	[ "$bad" = 0 ]
}

# Checks that cannot fail: a bare `! cmd` (SC2314), or one inside a loop
# whose status only the last pass decides; `[ a ] && [ b ]` before the end
# of a block, whose `[ a ]` errexit ignores. shellcheck finds the first.
@test "the bats suite: no check that cannot fail" {
	need shellcheck
	local f bad=0
	for f in "$ROOT"/tests/e2e/*.bats; do
		(cd "$ROOT" && shellcheck -x -S error "${f#"$ROOT"/}") || bad=1
	done
	# the others by pattern: a `!` statement, or an && list of tests not
	# ending its block (the next line is not `}`, `done` or `fi`)
	awk '
	FNR == 1 { prev = ""; pline = 0 }
	{
		line = $0; sub(/^[ \t]+/, "", line)
		if (pline && line !~ /^(\}|done|fi|else|elif|;;|esac)/)
			{ print FILENAME ":" pline ": [ ] && [ ] before the end of its block"; bad = 1 }
		pline = 0
		if (line ~ /^! /) { print FILENAME ":" FNR ": bare !"; bad = 1 }
		if (line ~ /^\[ .*\] && \[ .*\]$/) pline = FNR
	}
	END { exit bad }' "$ROOT"/tests/e2e/*.bats || bad=1
	[ "$bad" = 0 ]
}

# --- systemd, logrotate ---------------------------------------------------------

@test "systemd-analyze verify meshlens.service: clean; exposure stays low" {
	need systemd-analyze
	local unit=$DEPLOY/systemd/meshlens.service
	tmpdir
	grep -qx 'ExecStart=/usr/local/bin/meshlens -c /etc/meshlens/config.json' "$unit"
	if [ -e /usr/local/bin/meshlens ]; then
		: # an installed meshlens: verify against it
	elif [ -w /usr/local/bin ]; then
		ln -s "$MESHLENS" /usr/local/bin/meshlens
		LINKED=1
	else
		# not root: the same unit, pointing at the build
		sed "s#^ExecStart=/usr/local/bin/meshlens#ExecStart=$MESHLENS#" "$unit" >"$T/meshlens.service"
		unit=$T/meshlens.service
	fi
	run systemd-analyze verify "$unit"
	echo "$output"
	[ "$status" = 0 ]
	[ -z "$output" ]
	run systemd-analyze security --offline=true "$unit"
	echo "$output" | tail -1
	level=$(sed -n 's/.*Overall exposure level for meshlens.service: \([0-9.]*\).*/\1/p' <<<"$output")
	[ -n "$level" ]
	awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }'
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$DEPLOY/systemd/meshlens.service"
	grep -qx 'Restart=on-failure' "$DEPLOY/systemd/meshlens.service"
}

@test "capabilities: the unit grants what the DaemonSet grants; meshlens works with exactly those, and fails without any one" {
	local caps c
	caps=$(daemonset_caps)
	[ "$caps" = "$(unit_caps)" ]
	ml_env
	port=$(free_port)
	start_ml --caps "$caps" -c "$DEPLOY/systemd/config.json" -o "$T/access.log" -m "127.0.0.1:$port" --drops
	# its bounding set holds nothing else
	bnd=$((16#$(awk '/^CapBnd:/ { print $2 }' "/proc/$DAEMON_PID/status")))
	want=0
	for c in $caps; do
		case $c in BPF) want=$((want | 1 << 39)) ;; PERFMON) want=$((want | 1 << 38)) ;; NET_ADMIN) want=$((want | 1 << 12)) ;; esac
	done
	[ $((bnd & ~want)) = 0 ]
	# attached, meshlens keeps nothing, or only CAP_BPF (bit 39) where this
	# kernel needs it for map reads (the ready line says which)
	case $(sed -n 's/.*ready: .*, capabilities \([A-Z_a-z]*\)$/\1/p' "$T/daemon.err") in
	none) want=0000000000000000 ;;
	CAP_BPF) want=0000008000000000 ;;
	*) false ;;
	esac
	[ "$(awk '/^CapEff:/ { print $2 }' "/proc/$DAEMON_PID/status")" = "$want" ]
	[ "$(awk '/^CapPrm:/ { print $2 }' "/proc/$DAEMON_PID/status")" = "$want" ]
	[ "$(curl -s --max-time 5 "http://127.0.0.1:$port/healthz")" = ok ]
	some_traffic
	wait_conns 11
	[ "$(jq -s 'map(select(.success == false and .failure == "refused")) | length' "$T/access.log")" = 1 ]
	check_conns
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID"
	DAEMON_PID=""
	# its links are pinned (they outlive it, for the next daemon): remove them
	"$MESHLENS" --detach --pin-path "$PIN"
	[ -z "$(cgroup_attached "$CG")" ]
	# each one is needed: without it nothing starts and nothing stays attached
	for c in $caps; do
		run timeout 20 setpriv --bounding-set="$(setpriv_caps "${caps//$c/}")" --inh-caps=-all --ambient-caps=-all \
			"$MESHLENS" --pin-path "$PIN" -g "$CG" -o "$T/access-$c.log" -m off --drops
		echo "without CAP_$c: exit $status"
		[ "$status" != 0 ]
		[ "$status" != 124 ]
		[[ "$output" != *ready* ]]
	done
	[ -z "$(cgroup_attached "$CG")" ]
}

@test "every syscall meshlens makes is allowed by the unit's SystemCallFilter" {
	need strace systemd-analyze
	ml_env
	# expand the filter's groups (@system-service ...) into syscall names
	expand() {
		systemd-analyze syscall-filter "$1" | awk 'NR > 1 && $1 !~ /^#/ && NF { print $1 }' |
			while read -r s; do case $s in @*) expand "$s" ;; *) echo "$s" ;; esac; done
	}
	for s in $(sed -n 's/^SystemCallFilter=//p' "$DEPLOY/systemd/meshlens.service"); do
		case $s in @*) expand "$s" ;; *) echo "$s" ;; esac
	done | sort -u >"$T/allowed"
	[ "$(wc -l <"$T/allowed")" -gt 100 ]
	port=$(free_port)
	# (a SANITIZE=1 build: LeakSanitizer cannot run under ptrace)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -qq -o "$T/strace" "$MESHLENS" --pin-path "$PIN" -g "$CG" -c "$DEPLOY/systemd/config.json" \
		-o "$T/access.log" -m "127.0.0.1:$port" --drops 2>"$T/daemon.err" &
	STRACE_PID=$!
	for _ in $(seq 200); do grep -q ready "$T/daemon.err" && break; sleep 0.1; done
	grep -q ready "$T/daemon.err"
	# strace blocks fatal signals while it traces (-o FILE PROG): meshlens is its child
	DAEMON_PID=$(pgrep -P "$STRACE_PID")
	[ -n "$DAEMON_PID" ]
	# one connection held over a refresh of the open connections' counters
	# (refresh_interval_ms 5000), which also takes a drop-map pass
	"$MLTRAFFIC" --cgroup "$CG" many 127.0.0.1 1 --hold-ms 15000 >"$T/held.json" &
	held=$!
	some_traffic
	wait_conns 11
	scrape "$port" "$T/m"
	curl -sSf --max-time 5 -H 'Accept-Encoding: gzip' -o /dev/null "http://127.0.0.1:$port/metrics"
	for _ in $(seq 100); do
		scrape "$port" "$T/m"
		[ "$(samples_in sum "$T/m" meshlens_events_total 'source="live_socket"')" -ge 2 ] && break
		sleep 0.1
	done
	[ "$(samples_in sum "$T/m" meshlens_events_total 'source="live_socket"')" -ge 2 ]
	kill "$held"
	kill -TERM "$DAEMON_PID"
	wait "$STRACE_PID"
	DAEMON_PID=""
	grep -q 'exiting on signal 15' "$T/daemon.err"
	sed -E 's/^[0-9]+ +//; s/\(.*//' "$T/strace" | grep -E '^[a-z0-9_]+$' | sort -u >"$T/used"
	run comm -23 "$T/used" "$T/allowed"
	echo "syscalls outside the filter: $output"
	[ -z "$output" ]
}

@test "logrotate: the shipped config parses, and a rotation (rename + SIGHUP) loses no access-log line" {
	need logrotate
	ml_env
	logrotate -d "$DEPLOY/logrotate/meshlens" 2>&1 | grep -q 'rotating pattern: /var/log/meshlens/\*.log'
	run grep -qE '^[[:space:]]*copytruncate' "$DEPLOY/logrotate/meshlens"
	[ "$status" = 1 ]
	# the same file on this test's log directory, signalling this daemon
	mkdir -m 0750 "$T/log"
	port=$(free_port)
	start_ml -c "$DEPLOY/systemd/config.json" -o "$T/log/access.log" -m "127.0.0.1:$port"
	sed -e "s#^/var/log/meshlens/\*.log #$T/log/*.log #" \
	    -e "s#systemctl reload meshlens.service.*#kill -HUP $DAEMON_PID#" \
	    "$DEPLOY/logrotate/meshlens" >"$T/logrotate.conf"
	grep -q "^$T/log/" "$T/logrotate.conf"
	grep -q "kill -HUP $DAEMON_PID" "$T/logrotate.conf"
	traffic many 127.0.0.1 4
	for _ in $(seq 50); do [ "$(wc -l <"$T/log/access.log")" -ge 8 ] && break; sleep 0.1; done
	[ "$(wc -l <"$T/log/access.log")" = 8 ]
	logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf"
	sleep 0.3
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		wait "$DAEMON_PID"; rc=$?; DAEMON_PID=""
		echo "meshlens died on the postrotate SIGHUP (exit $rc): with the metrics endpoint on," \
		     "its HTTP thread does not block SIGHUP/SIGTERM (it starts before the event loop blocks them)" >&2
		cat "$T/daemon.err" >&2
		return 1
	fi
	traffic many 127.0.0.1 3
	for _ in $(seq 50); do [ -f "$T/log/access.log" ] && [ "$(wc -l <"$T/log/access.log")" -ge 6 ] && break; sleep 0.1; done
	# the old lines in access.log.1 (not compressed yet: delaycompress), the new in a new file
	[ "$(wc -l <"$T/log/access.log.1")" = 8 ]
	[ "$(wc -l <"$T/log/access.log")" = 6 ]
	[ "$(stat -c %a "$T/log/access.log")" = 640 ]
	cat "$T/log/access.log.1" "$T/log/access.log" >"$T/access.log"
	check_conns
}

# --- metrics: dashboard, README, scrape config ----------------------------------------

@test "every metric the dashboard queries and README.md names is exported by the real daemon" {
	ml_env
	port=$(free_port)
	# the k8s config as deployed, with a metadata file in place of the sidecar's:
	# workload families, no IP-pair families (IP labels: the cardinality risk)
	"$SYNC" --from-file "$FIXTURE" --node node-1 --output "$T/workloads.json" 2>/dev/null
	start_ml -c "$DEPLOY/k8s/config.json" --metadata "$T/workloads.json" -o "$T/access.log" \
		-m "127.0.0.1:$port" --drops
	some_traffic
	wait_conns 11
	scrape "$port" "$T/m"
	grep -q '^meshlens_workload_tcp_connections_opened_total{' "$T/m"
	run ! grep -q '^meshlens_tcp_' "$T/m"
	stop_daemon
	# the systemd config as shipped (IP pairs), with the same metadata
	: >"$T/access.log"
	start_ml -c "$DEPLOY/systemd/config.json" --metadata "$T/workloads.json" -o "$T/access.log" \
		-m "127.0.0.1:$port" --drops
	some_traffic
	wait_conns 11
	scrape "$port" "$T/m2"
	grep -q '^meshlens_tcp_connections_opened_total{' "$T/m2"
	# a histogram family is queried by its _bucket, _sum and _count series
	awk '$1 == "#" && $2 == "TYPE" { print $3 }
	     $1 == "#" && $2 == "TYPE" && $4 == "histogram" { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" }' \
		"$T/m" "$T/m2" | sort -u >"$T/exported"
	{ jq -r '.. | objects | (.expr?, .definition?) | strings' "$DASHBOARD"; cat "$ROOT/README.md"; } |
		grep -oE 'meshlens_[a-z_]+' | sort -u >"$T/named"
	[ "$(grep -c . "$T/named")" -ge 15 ]
	missing=""
	while read -r n; do
		case $n in
		*_) grep -q "^$n" "$T/exported" || missing="$missing $n*" ;; # a family: meshlens_nic_*_total
		*) grep -qx "$n" "$T/exported" || missing="$missing $n" ;;
		esac
	done <"$T/named"
	echo "named but not exported:$missing"
	[ -z "$missing" ]
	# the dashboard uses no metric outside meshlens_ (every query is about meshlens)
	[ -z "$(jq -r '.. | objects | .expr? | strings' "$DASHBOARD" | grep -vE 'meshlens_')" ]
	# and covers what it is for
	for n in connections_opened connections_closed connections_failed sent_bytes received_bytes retransmits; do
		grep -qx "meshlens_tcp_${n}_total" "$T/named"
		jq -r '.. | objects | .expr? | strings' "$DASHBOARD" | grep -q "meshlens_workload_tcp_${n}_total"
	done
	for n in drops_total drop_bytes_total events_total events_lost_total series scrape_duration_seconds; do
		jq -r '.. | objects | .expr? | strings' "$DASHBOARD" | grep -q "meshlens_$n"
	done
}

@test "every dashboard query runs on a real Prometheus scraping meshlens with scrape.yml's host job, and returns series" {
	need prometheus promtool
	ml_env
	port=$(free_port)
	promport=$(free_port)
	# 127.0.0.1 and the test cgroup named, for the workload panels
	cat >"$T/md.json" <<-EOF
	{"workloads": [{"ips": ["127.0.0.1"], "workload": "server", "namespace": "test"},
	               {"cgroups": ["$CGREL"], "workload": "client", "namespace": "test"}]}
	EOF
	start_ml -c "$DEPLOY/systemd/config.json" --metadata "$T/md.json" -o "$T/access.log" \
		-m "127.0.0.1:$port" --drops
	# deploy/prometheus/scrape.yml's meshlens-host job, scraping every second
	/usr/bin/python3 -c 'import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
job = [j for j in c["scrape_configs"] if j["job_name"] == "meshlens-host"][0]
job.update(scrape_interval="1s", scrape_timeout="1s", static_configs=[{"targets": [sys.argv[2]]}])
yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "scrape_configs": [job]}, sys.stdout)' \
		"$DEPLOY/prometheus/scrape.yml" "127.0.0.1:$port" >"$T/prometheus.yml"
	promtool check config "$T/prometheus.yml" >/dev/null
	prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" \
		--web.listen-address="127.0.0.1:$promport" >"$T/prometheus.log" 2>&1 &
	PROM_PID=$!
	PROMURL=http://127.0.0.1:$promport
	# scrapes so far (Prometheus starts scraping ~5 s after it started)
	scrapes() {
		local v
		v=$(curl -s --max-time 5 "$PROMURL/api/v1/query" --data-urlencode 'query=count_over_time(up[10m])' |
			jq -r '.data.result[0].value[1] // 0' 2>/dev/null)
		echo "${v:-0}"
	}
	for _ in $(seq 150); do [ "$(scrapes)" -ge 1 ] && break; sleep 0.1; done
	[ "$(scrapes)" -ge 1 ] || { cat "$T/prometheus.log" >&2; false; }
	some_traffic
	wait_conns 11
	# two more scrapes after the traffic: every rate has two points
	n0=$(scrapes)
	for _ in $(seq 100); do [ "$(scrapes)" -ge $((n0 + 2)) ] && break; sleep 0.1; done
	n=0 bad=""
	while IFS= read -r e; do
		q=$(sed -e 's/\$__rate_interval/15s/g' -e 's/\$job/.*/g' -e 's/\$instance/.*/g' <<<"$e")
		r=$(curl -s --max-time 5 "$PROMURL/api/v1/query" --data-urlencode "query=$q")
		if [ "$(jq -r '.status' <<<"$r")" != success ] || [ "$(jq '.data.result | length' <<<"$r")" = 0 ]; then
			bad="$bad
$q -> $r"
		fi
		n=$((n + 1))
	done < <(jq -r '.. | objects | .expr? | strings' "$DASHBOARD")
	echo "$n queries; failing or empty:$bad"
	[ "$n" -ge 25 ]
	[ -z "$bad" ]
	# the variables' source: the job label of the shipped job
	r=$(curl -s -G "$PROMURL/api/v1/label/job/values" --data-urlencode 'match[]=meshlens_build_info')
	[ "$(jq -r '.data | join(" ")' <<<"$r")" = meshlens-host ]
}

@test "prometheus/scrape.yml passes promtool (Kubernetes discovery swapped for a static target where promtool lacks it)" {
	need promtool
	tmpdir
	local f=$DEPLOY/prometheus/scrape.yml
	if promtool check config "$f" >"$T/out" 2>&1; then
		return 0
	fi
	grep -q 'kubernetes_sd_configs not found' "$T/out" || { cat "$T/out" >&2; return 1; }
	echo "# this promtool has no Kubernetes discovery (Debian's build): checking the rest" >&3
	/usr/bin/python3 -c 'import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
for j in c["scrape_configs"]:
    if j.pop("kubernetes_sd_configs", None) is not None:
        j["static_configs"] = [{"targets": ["127.0.0.1:2113"]}]
        j["authorization"]["credentials_file"] = sys.argv[2]
yaml.safe_dump(c, sys.stdout)' "$f" "$f" >"$T/scrape.yml"
	promtool check config "$T/scrape.yml"
	# the Kubernetes job keeps only the metrics proxy's port of the meshlens Service
	[ "$(y2j "$f" | jq -r '.[0].scrape_configs[] | select(.job_name == "meshlens") | .relabel_configs[0] | "\(.action) \(.regex)"')" = "keep meshlens;https-metrics" ]
}

# --- Containerfile ------------------------------------------------------------------

@test "Containerfile: the build stage's files build meshlens; the runtime stage installs every library it links" {
	local cf=$DEPLOY/Containerfile src dst lib pkg missing=""
	tmpdir
	grep -qE '^FROM docker.io/library/debian:12 AS build$' "$cf"
	grep -qE '^RUN /src/deploy/install-deps.sh --build-only' "$cf"
	[ "$(grep -E '^FROM ' "$cf" | tail -1)" = "FROM docker.io/library/debian:12-slim" ]
	# what the build stage copies is enough for make (compiled here, outside any container)
	awk '/^FROM/ { stage = $NF } stage == "build" && /^COPY / && $2 !~ /^--/ { print $2, $3 }' "$cf" >"$T/copies"
	[ "$(wc -l <"$T/copies")" -ge 5 ]
	while read -r src dst; do
		mkdir -p "$T/ctx$(dirname "$dst")"
		cp -r "$ROOT/$src" "$T/ctx$dst"
	done <"$T/copies"
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u BUILD -u SANITIZE make -C "$T/ctx/src" VERSION=containerfile-test build/meshlens >"$T/make.log" 2>&1 || { tail -20 "$T/make.log" >&2; return 1; }
	[ "$("$T/ctx/src/build/meshlens" --version)" = "meshlens containerfile-test" ]
	# the runtime packages: those of every library meshlens links (but libc6, in the base image)
	runtime=$(awk '/^FROM/ { stage = $NF } stage == "debian:12-slim" || stage == "docker.io/library/debian:12-slim"' "$cf" |
		sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^lib|^zlib' | sort -u)
	echo "runtime packages: $(xargs <<<"$runtime")"
	# (of the binary the build stage made: the one the image ships)
	for lib in $(objdump -p "$T/ctx/src/build/meshlens" | awk '/NEEDED/ { print $2 }'); do
		pkg=$(dpkg -S "*/$lib" 2>/dev/null | grep -v -- '-dev' | head -1 | cut -d: -f1)
		echo "$lib: $pkg"
		[ "$pkg" = libc6 ] && continue
		grep -qx "$pkg" <<<"$runtime" || missing="$missing $pkg($lib)"
	done
	echo "missing from the runtime stage:$missing"
	[ -z "$missing" ]
	# every package named exists (installed here through the -dev packages)
	for pkg in $runtime; do dpkg-query -W "$pkg" >/dev/null; done
}
