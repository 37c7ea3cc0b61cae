#!/usr/bin/env bash
# The kernel matrix runs the tests that depend on the kernel: prints a bats
# --filter regex naming every test of the given .bats files except those
# marked "# host-only: ..." on the line before their @test (user space alone,
# the same on every kernel: run on the host by make test).
#   tests/vm/select.sh tests/e2e/X.bats...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 FILE.bats..." >&2; exit 2; }
awk '
	/^# host-only:/ { skip = 1; next }
	/^@test "/ {
		name = $0
		sub(/^@test "/, "", name)
		sub(/" *\{ *$/, "", name)
		if (!skip) {
			gsub(/[][\\.^$*+?(){}|]/, "\\\\&", name)
			printf "%s%s", (n++ ? "|" : "^("), name
		}
		skip = 0
		next
	}
	{ skip = 0 }
	END { if (n) print ")$" }
' "$@"
