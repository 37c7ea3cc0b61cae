#!/usr/bin/env bash
# The kernel matrix: for each kernel, boot it in qemu (tests/vm/run.sh) and
# run end-to-end bats files inside, counted as tests/run.sh counts them.
#   tests/vm/vmtest.sh [BUILD_DIR]        (default: build)
# Prints per kernel its version, passed/failed/skipped and minutes, and ends
# with "N passed, N failed, N skipped" over all kernels; exits 1 if a test
# failed or a VM did not report.
# Env: VM_KERNELS (default "5.10 6.1 6.12");
#   VM_TESTS="cli accesslog" (tests/e2e/NAME.bats; default: all of them),
#   VM_TESTS_<K> for one kernel, K with _ for . (VM_TESTS_5_10=...; "none"
#   leaves that kernel out); VM_FILTER / VM_FILTER_<K>: a regex, only
#   tests whose name matches (bats --filter); and those of tests/vm/run.sh
#   (VM_TIMEOUT per VM, VM_MEM, VM_SMP, VM_CACHE, ...).
# Results: BUILD_DIR/vm/<K>.tap and <K>.log (the VM's console).
set -euo pipefail
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

build=$(realpath -m "${1:-build}")
[ -x "$build/meshlens" ] || vm_die "no $build/meshlens: build first (make all)"
out=$build/vm
mkdir -p "$out"
read -ra kernels <<<"$VM_KERNELS"
[ ${#kernels[@]} -gt 0 ] || vm_die "VM_KERNELS is empty"
# a build directory outside the project is shared writable too
case $build/ in "$VM_ROOT"/*) rw="" ;; *) rw=$build ;; esac

child=""
trap '[ -z "$child" ] || { kill -TERM "$child"; wait "$child"; }; exit 130' INT TERM HUP
total_p=0 total_f=0 total_s=0
summary=()
for k in "${kernels[@]}"; do
	key=${k//[.-]/_}
	sel_var=VM_TESTS_$key filt_var=VM_FILTER_$key
	sel=${!sel_var-${VM_TESTS:-}}
	filter=${!filt_var-${VM_FILTER:-}}
	if [ "$sel" = none ]; then
		summary+=("$k: left out ($sel_var=none)")
		continue
	fi
	src=VM_TESTS
	[ -z "${!sel_var+x}" ] || src=$sel_var
	files=()
	if [ -z "$sel" ]; then
		for f in "$VM_ROOT"/tests/e2e/*.bats; do files+=("tests/e2e/${f##*/}"); done
	else
		for n in $sel; do
			n=${n%.bats}
			n=${n##*/}
			[ -f "$VM_ROOT/tests/e2e/$n.bats" ] || vm_die "no tests/e2e/$n.bats (from $src)"
			files+=("tests/e2e/$n.bats")
		done
	fi
	kdir=$(vm_kernel_dir "$k")
	ver=$(vm_kernel_version "$kdir")
	tap=$out/$k.tap
	rm -f "$tap"
	cmd=$(printf 'set -o pipefail; MESHLENS_BUILD=%q bats --tap --timing' "$build")
	[ -z "$filter" ] || cmd="$cmd $(printf -- '--filter %q' "$filter")"
	cmd="$cmd $(printf ' %q' "${files[@]}") | tee $(printf %q "$tap")"
	echo "== vmtest: kernel $ver ($k): ${files[*]##*/}${filter:+ (filter: $filter)}"
	start=$(date +%s)
	# in the background, so that a signal to this script reaches run.sh,
	# which takes its VM down
	VM_RW="${VM_RW:-} $rw" VM_LOG=$out/$k.log "$VM_ROOT/tests/vm/run.sh" "$kdir" "$cmd" &
	child=$!
	status=0
	wait "$child" || status=$?
	child=""
	[ "$status" != 130 ] || vm_die "interrupted"
	mins=$(awk -v s=$(($(date +%s) - start)) 'BEGIN { printf "%.1f", s / 60 }')

	ok=0 skip=0 notok=0 note=""
	if [ -f "$tap" ]; then
		ok=$(grep -cE '^ok [0-9]+' "$tap" || true)
		skip=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" || true)
		notok=$(grep -cE '^not ok [0-9]+' "$tap" || true)
	fi
	p=$((ok - skip)) f=$notok
	if [ "$status" = 124 ] || [ "$status" = 125 ]; then
		f=$((f + 1))
		note=" (the VM did not report: $([ "$status" = 124 ] && echo "timed out after ${VM_TIMEOUT:-3600}s" || echo "ended early"), see $out/$k.log)"
	elif [ ! -f "$tap" ] || ! grep -qE '^1\.\.[0-9]+' "$tap"; then
		f=$((f + 1))
		note=" (bats printed no plan: exit $status, see $out/$k.log)"
	fi
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + skip))
	summary+=("$k: kernel $ver: $p passed, $f failed, $skip skipped in $mins min$note")
	echo "== vmtest: ${summary[-1]}"
done

echo "== vmtest: matrix"
for s in "${summary[@]}"; do echo "   $s"; done
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
