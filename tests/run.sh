#!/usr/bin/env bash
# Runs the cmocka unit tests, then the bats end-to-end tests, and ends with
# one summary line: "N passed, N failed, N skipped".
#   tests/run.sh [--unit|--e2e] BUILD_DIR
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

what=all
case "${1:-}" in --unit) what=unit; shift ;; --e2e) what=e2e; shift ;; esac
build=${1:-build}
passed=0 failed=0 skipped=0

run_unit() {
	local t out
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] || continue
		echo "== unit: ${t##*/}"
		out=$("$t" 2>&1)
		echo "$out"
		local p f
		p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' <<<"$out" | tail -1)
		f=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' <<<"$out" | tail -1)
		passed=$((passed + ${p:-0}))
		failed=$((failed + ${f:-0}))
		# a binary that crashed reports neither line
		grep -q '\[  PASSED  \]' <<<"$out" || failed=$((failed + 1))
	done
}

run_e2e() {
	local out
	echo "== end-to-end (bats, real kernel)"
	out=$(mktemp)
	MESHLENS_BUILD=$(realpath "$build") bats --tap tests/e2e | tee "$out"
	passed=$((passed + $(grep -cE '^ok [0-9]+' "$out" | head -1) - $(grep -cE '^ok [0-9]+ .*# skip' "$out")))
	skipped=$((skipped + $(grep -cE '^ok [0-9]+ .*# skip' "$out")))
	failed=$((failed + $(grep -cE '^not ok [0-9]+' "$out")))
	grep -qE '^1\.\.[0-9]+' "$out" || failed=$((failed + 1))
	rm -f "$out"
}

[ "$what" = e2e ] || run_unit
[ "$what" = unit ] || run_e2e

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
