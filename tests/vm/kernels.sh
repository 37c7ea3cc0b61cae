#!/usr/bin/env bash
# Fetch and unpack the kernels of the test matrix (idempotent).
#   tests/vm/kernels.sh [NAME...]     NAME: 5.10 6.1 6.12 (default: $VM_KERNELS)
# Prints one line per kernel: NAME VERSION DIRECTORY.
# Env: VM_CACHE (default /var/cache/meshlens-vm), VM_REFRESH=1 to look up
# the current package again, VM_MIRROR / VM_SECURITY_MIRROR to override the
# mirror read from the host's apt sources.
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -gt 0 ] || read -ra names <<<"$VM_KERNELS"
[ $# -eq 0 ] || names=("$@")
for n in "${names[@]}"; do
	dir=$(vm_fetch "$n")
	echo "$n $(vm_kernel_version "$dir") $dir"
done
