#!/bin/sh
# make test: every unit test, fuzz target, man page lint and protocol
# test, ending with ONE line "N passed, N failed" that sums them all.
# Exits non-zero if anything failed.  Run as root (the protocol tests
# start the real daemon with full privilege separation).
#
# usage: BUILD=build sh mk/test.sh [unit] [fuzz] [man] [proto]
# With no argument, all four.  FUZZ_TIME is the seconds per fuzz target.

BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
FUZZ_TIME=${FUZZ_TIME:-15}
PYTEST_TIMEOUT=${PYTEST_TIMEOUT:-1200}
PYTEST_WORKERS=${PYTEST_WORKERS:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

phases=${*:-unit fuzz man proto}
pass=0
fail=0
skip=0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/postern-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# "N passed, N failed" as the last such line of a file, added to ours.
add_counts() {
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		return 1
	fi
	set -- $line
	pass=$((pass + $1))
	fail=$((fail + $3))
	return 0
}

ensure_users() {
	for u in _postern _posterns; do
		id "$u" >/dev/null 2>&1 && continue
		if [ "$(id -u)" != 0 ]; then
			echo "test: user $u is missing (run as root)" >&2
			fail=$((fail + 1))
			continue
		fi
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin "$u" || fail=$((fail + 1))
	done
}

run_unit() {
	echo "== unit tests"
	# Relinked every time, so a test that no longer builds cannot
	# pass on a stale binary.
	rm -f "$BUILD"/regress/unit/test_*
	if ! $MAKE -k -s BUILD="$BUILD" unit-bins >"$tmp/unit-build" 2>&1
	then
		cat "$tmp/unit-build"
	fi
	for src in regress/unit/test_*.c; do
		[ -f "$src" ] || continue
		name=${src##*/}
		name=${name%.c}
		bin="$BUILD/regress/unit/$name"
		if [ ! -x "$bin" ]; then
			echo "$name: FAILED (did not build)"
			fail=$((fail + 1))
			continue
		fi
		timeout 120 "$bin" >"$tmp/$name.out" 2>&1
		rc=$?
		before=$fail
		if ! add_counts "$tmp/$name.out"; then
			fail=$((fail + 1))
		elif [ "$rc" -ne 0 ] && [ "$fail" -eq "$before" ]; then
			fail=$((fail + 1))	# crashed after its summary
		fi
		if [ "$rc" -ne 0 ]; then
			echo "$name: FAILED (exit $rc)"
			sed 's/^/	/' "$tmp/$name.out" | tail -n 40
		else
			echo "$name: $(tail -n 1 "$tmp/$name.out")"
		fi
	done
}

run_fuzz() {
	echo "== fuzz targets (${FUZZ_TIME}s each)"
	if ! $MAKE -k -s BUILD="$BUILD" fuzz-bins >"$tmp/fuzz-build" 2>&1
	then
		cat "$tmp/fuzz-build"
	fi
	sh regress/fuzz/run.sh "$BUILD/regress/fuzz" "$FUZZ_TIME" \
	    >"$tmp/fuzz.out" 2>&1
	grep -vE '^[0-9]+ passed, [0-9]+ failed$' "$tmp/fuzz.out"
	add_counts "$tmp/fuzz.out" || fail=$((fail + 1))
}

run_man() {
	echo "== man pages"
	for page in man/*.[58]; do
		[ -f "$page" ] || continue
		if mandoc -Tlint -Wwarning "$page" >"$tmp/lint" 2>&1 &&
		    [ ! -s "$tmp/lint" ]; then
			pass=$((pass + 1))
		else
			echo "$page: FAILED"
			sed 's/^/	/' "$tmp/lint"
			fail=$((fail + 1))
		fi
	done
}

run_proto() {
	echo "== protocol tests"
	POSTERN_BUILD="$ROOT/$BUILD"
	case $BUILD in
	/*)	POSTERN_BUILD=$BUILD ;;
	esac
	export POSTERN_BUILD
	# The tests mostly wait on the daemon: several run at once, a
	# module to a worker so that its shared daemon is started once.
	workers=
	if [ "$PYTEST_WORKERS" != 1 ] &&
	    /usr/bin/python3 -c 'import xdist' 2>/dev/null; then
		workers="-n $PYTEST_WORKERS --dist loadfile"
	fi
	# shellcheck disable=SC2086
	timeout "$PYTEST_TIMEOUT" /usr/bin/python3 -m pytest -q \
	    -p no:cacheprovider $workers --junitxml="$tmp/junit.xml" \
	    regress/proto
	counts=$(/usr/bin/python3 - "$tmp/junit.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    sys.exit(1)
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
    s += int(su.get("skipped", 0))
print(t - f - s, f, s)
PY
	)
	if [ -z "$counts" ]; then
		echo "pytest: FAILED (no results)"
		fail=$((fail + 1))
		return
	fi
	set -- $counts
	pass=$((pass + $1))
	fail=$((fail + $2))
	skip=$((skip + $3))
}

ensure_users
for phase in $phases; do
	case $phase in
	unit)	run_unit ;;
	fuzz)	run_fuzz ;;
	man)	run_man ;;
	proto)	run_proto ;;
	*)	echo "test: unknown phase $phase" >&2; fail=$((fail + 1)) ;;
	esac
done

[ "$skip" -gt 0 ] && echo "($skip skipped)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
