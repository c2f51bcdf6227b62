#!/bin/sh
# `make bench`, after deps and the build: runs every benchmark under
# regress/bench/ (each folder's executable `run`), one after the other,
# against the build in POSTERN_BUILD or BUILD (default ./build).
# Benchmarks are not tests: a slow result fails nothing, a benchmark
# that cannot run does.  BENCH=smtp runs only the named ones.
set -u

ROOT=$(pwd -P)
BUILD=${POSTERN_BUILD:-${BUILD:-build}}
case $BUILD in
/*)	;;
*)	BUILD=$ROOT/$BUILD ;;
esac
POSTERN_BUILD=$BUILD
export POSTERN_BUILD

if [ "$(id -u)" != 0 ]; then
	echo "bench: must run as root (benchmarks install and start MTAs)" >&2
	exit 1
fi

failed=""
ran=0
for dir in "$ROOT"/regress/bench/*/; do
	name=$(basename "$dir")
	[ -x "$dir/run" ] || continue
	if [ -n "${BENCH:-}" ]; then
		case " $BENCH " in
		*" $name "*)	;;
		*)		continue ;;
		esac
	fi
	echo "bench: $name"
	ran=$((ran + 1))
	if ! "$dir/run"; then
		failed="$failed $name"
	fi
done

if [ "$ran" = 0 ]; then
	echo "bench: no benchmark ran" >&2
	exit 1
fi
if [ -n "$failed" ]; then
	echo "bench: failed:$failed" >&2
	exit 1
fi
