#!/bin/sh
# Runs every fuzz target (regress/fuzz/fuzz_*.c, built into bindir)
# briefly, each from a copy of its seed corpus in a temporary directory
# (the seeds in the tree stay as they are).  A crash, leak, timeout or
# sanitizer report fails the target, and so does one that did not build.
#
# usage: run.sh bindir [seconds]
# Ends with "N passed, N failed"; exits 1 if any target failed.

bindir=$(cd "${1:?usage: run.sh bindir [seconds]}" && pwd) || exit 1
secs=${2:-15}
here=$(cd "$(dirname "$0")" && pwd)
pass=0
fail=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/postern-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

for src in "$here"/fuzz_*.c; do
	[ -f "$src" ] || continue
	name=${src##*/fuzz_}
	name=${name%.c}
	bin="$bindir/fuzz_$name"
	work="$tmp/$name"
	if [ ! -x "$bin" ]; then
		echo "fuzz_$name: FAILED (not built)"
		fail=$((fail + 1))
		continue
	fi
	mkdir -p "$work/corpus" "$work/artifacts"
	if [ -d "$here/corpus/$name" ]; then
		cp "$here/corpus/$name"/* "$work/corpus/" 2>/dev/null
	fi
	# -close_fd_mask=3 silences the target's own output; libFuzzer's
	# and the sanitizers' reports still reach the log.
	if (cd "$work" && TMPDIR="$work" "$bin" -max_total_time="$secs" \
	    -timeout=10 -rss_limit_mb=2048 -close_fd_mask=3 \
	    -artifact_prefix="$work/artifacts/" corpus) >"$work/log" 2>&1
	then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/log")
		echo "fuzz_$name: ok (${runs:-?} runs in ${secs}s)"
		pass=$((pass + 1))
	else
		echo "fuzz_$name: FAILED"
		grep -E 'ERROR|SUMMARY|runtime error|deadly signal|Test unit' \
		    "$work/log" | head -20 | sed 's/^/	/'
		for a in "$work/artifacts"/*; do
			[ -f "$a" ] || continue
			keep="${bindir}/crash-$name-${a##*/}"
			cp "$a" "$keep" && echo "	input kept in $keep"
		done
		fail=$((fail + 1))
	fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
