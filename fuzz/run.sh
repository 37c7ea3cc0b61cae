#!/usr/bin/env bash
# Build and run the libFuzzer targets (clang, ASan + UBSan).
#
#   fuzz/run.sh [SECONDS] [TARGET...]   fuzz each target SECONDS (default 10; 0 = only
#                                       replay the corpus, no fuzzing)
#   fuzz/run.sh --merge [TARGET...]     fold the inputs the last run found into
#                                       fuzz/corpus/TARGET (minimised with -merge=1)
#   fuzz/run.sh --list                  list the targets
#
# Targets: fuzz/fuzz_TARGET.c, seeds in fuzz/corpus/TARGET/. Each run works on a
# COPY of the corpus ($BUILD/fuzz/work/TARGET), so fuzzing never bloats the
# repository; --merge (or by hand:
#   build/fuzz/fuzz_TARGET -merge=1 fuzz/corpus/TARGET build/fuzz/work/TARGET)
# keeps what is worth keeping. A crash, leak, timeout or sanitizer report
# leaves its reproducer in fuzz/crashes/TARGET-crash-<sha1> (or -leak-, -timeout-,
# -oom-) and makes the script exit 1; replay it with
#   build/fuzz/fuzz_TARGET fuzz/crashes/TARGET-crash-<sha1>
# Logs: $BUILD/fuzz/TARGET.log. Environment: BUILD (default build), CLANG
# (default clang), FUZZ_ARGS (extra libFuzzer flags for every target).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$PWD

BUILD=${BUILD:-build}
CLANG=${CLANG:-clang}
out=$root/$BUILD/fuzz
[[ $BUILD = /* ]] && out=$BUILD/fuzz
crashes=$root/fuzz/crashes

# shellcheck disable=SC2054 # the commas are clang's
CFLAGS=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-fno-omit-frame-pointer -g -O1 -I. -std=gnu11 -Wall -Wextra -Werror)

# target: module sources | libraries | max input length
declare -A SRCS=(
	[config]="daemon/options.c lib/file.c lib/parse.c lib/util.c"
	[accesslog]="accesslog/format.c accesslog/sink.c accesslog/rotate.c lib/names.c lib/util.c"
	[expo]="metrics/expo.c"
	[http_parse]="lib/file.c lib/parse.c lib/util.c"	# includes metrics/http.c and daemon/options.c itself
	[http]="metrics/http.c lib/parse.c"
)
declare -A LIBS=(
	[config]="-lcjson"
	[accesslog]="-lcjson -lz"
	[expo]="-lm"
	[http_parse]="-lcjson -lmicrohttpd -lz -lpthread -lm"
	[http]="-lmicrohttpd -lz -lpthread"
)
declare -A MAXLEN=(
	[config]=4096
	[accesslog]=1024
	[expo]=2048
	[http_parse]=1024
	[http]=4096
)
ALL=(config accesslog expo http_parse http)

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

die() { echo "fuzz: $*" >&2; exit 2; }

# Build build/fuzz/fuzz_T unless it is newer than everything it is made of.
build() {
	local t=$1 bin=$out/fuzz_$1 src f stale=0
	src="fuzz/fuzz_$t.c ${SRCS[$t]}"
	[ -x "$bin" ] || stale=1
	for f in $src fuzz/run.sh */*.h bpf/*.h; do
		[ "$f" -nt "$bin" ] && stale=1
	done
	[ "$t" = http_parse ] && for f in metrics/http.c daemon/options.c; do
		[ "$f" -nt "$bin" ] && stale=1
	done
	[ $stale = 0 ] && return 0
	mkdir -p "$out"
	# shellcheck disable=SC2086
	"$CLANG" "${CFLAGS[@]}" -o "$bin" $src ${LIBS[$t]}
}

stat_of() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }

# run T SECONDS: fuzz a fresh copy of the corpus; 0 if clean
run() {
	local t=$1 secs=$2 bin=$out/fuzz_$1 work=$out/work/$1 log=$out/$1.log rc runs
	local -a args
	rm -rf "$work"
	mkdir -p "$work" "$crashes"
	cp -r "fuzz/corpus/$t/." "$work/"
	args=(-max_len="${MAXLEN[$t]}" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1
	      -artifact_prefix="$crashes/$t-")
	if [ "$secs" = 0 ]; then
		args+=(-runs=0)
	else
		args+=(-max_total_time="$secs")
	fi
	# shellcheck disable=SC2086
	"$bin" "${args[@]}" ${FUZZ_ARGS:-} "$work" >"$log" 2>&1 </dev/null
	rc=$?
	runs=$(stat_of "$log" number_of_executed_units)
	if [ $rc -ne 0 ]; then
		printf '%-11s FAILED (exit %d) after %s executions\n' "$t" $rc "${runs:-?}"
		grep -E '^(fuzz_[a-z_]+:|==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' \
			"$log" | head -20 | sed 's/^/    /'
		echo "    full log: $log"
		return 1
	fi
	printf '%-11s ok: %10s executions in %ss (%s/s), %s inputs in corpus copy\n' "$t" \
		"${runs:-?}" "$secs" "$(stat_of "$log" average_exec_per_sec)" \
		"$(find "$work" -type f | wc -l)"
	return 0
}

merge() {
	local t=$1 bin=$out/fuzz_$1 work=$out/work/$1 before after
	[ -d "$work" ] || { echo "$t: no run to merge ($work missing)"; return 0; }
	before=$(find "fuzz/corpus/$t" -type f | wc -l)
	"$bin" -merge=1 -max_len="${MAXLEN[$t]}" "fuzz/corpus/$t" "$work" \
		>"$out/$t.merge.log" 2>&1 </dev/null || { cat "$out/$t.merge.log"; return 1; }
	after=$(find "fuzz/corpus/$t" -type f | wc -l)
	echo "$t: fuzz/corpus/$t $before -> $after inputs"
}

mode=run secs=10
case "${1:-}" in
--list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
--merge) mode=merge; shift ;;
-h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
'') ;;
*) [[ $1 =~ ^[0-9]+$ ]] || die "SECONDS must be a number, got '$1'"; secs=$1; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
	[ -n "${MAXLEN[$t]:-}" ] || die "unknown target '$t' (fuzz/run.sh --list)"
done
command -v "$CLANG" >/dev/null || die "$CLANG not found (apt-get install clang)"

failed=0 broken=0
for t in "${targets[@]}"; do
	build "$t" || { printf '%-11s BUILD FAILED\n' "$t"; failed=1; broken=1; continue; }
	if [ $mode = merge ]; then
		merge "$t" || failed=1
	else
		run "$t" "$secs" || failed=1
	fi
done
if [ $mode = run ]; then
	if [ $failed = 0 ]; then
		echo "fuzz: ${#targets[@]} targets clean (${secs}s each)"
	elif [ $broken = 1 ]; then
		echo "fuzz: FAILED (a target did not build)"
	else
		echo "fuzz: FAILED, reproducers in fuzz/crashes/"
	fi
fi
exit $failed
