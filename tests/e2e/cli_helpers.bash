# Helpers of tests/e2e/cli.bats.
# shellcheck shell=bash
# bats sets status, output and lines (run):
# shellcheck disable=SC2154

# probe_line FEATURE [env...]: the --probe line of FEATURE under the given environment
probe_line() {
	local feature=$1; shift
	env "$@" "$MESHLENS" --probe --drops | awk -v f="$feature" '$1 == f'
}

# bad input: exit 2, one line naming the problem, nothing attached
bad() {
	local expect=$1; shift
	# (a daemon that wrongly starts must fail the test, not hang it)
	run timeout -k 5 20 "$MESHLENS" "$@"
	echo "status=$status output=$output"
	[ "$status" = 2 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" == *"$expect"* ]]
	[ -z "$(cgroup_attached "$CG")" ]
	[ ! -e "$PIN" ]   # nothing pinned either
}
