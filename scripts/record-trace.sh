#!/usr/bin/env bash
# Records the memory accesses of a C program with Valgrind's Lackey tool
# (instruction fetches, loads, stores, modifies) into an xz-compressed
# trace that `nestmmu run` replays (workload kind "trace", format
# "lackey"; docs/USAGE.md).
#
#   scripts/record-trace.sh PROGRAM.c OUT.lackey.xz [ARGS...]
#
# Needs gcc, valgrind and xz (Debian: apt-get install gcc valgrind
# xz-utils). The program is compiled statically (-O1), so that the dynamic
# loader's accesses stay out of the trace. Only the trace lines are kept;
# Valgrind's own messages go to stderr. A 1 MiB dictionary keeps the
# reader's memory small whatever the trace's length.
set -euo pipefail
if [ $# -lt 2 ]; then
	echo "usage: $0 PROGRAM.c OUT.lackey.xz [ARGS...]" >&2
	exit 2
fi
src=$1
out=$2
shift 2
for tool in gcc valgrind xz; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -O1 -static -o "$tmp/prog" "$src"
# Lackey writes the trace to Valgrind's log; keep the log in a file and
# drop Valgrind's "==pid==" lines from it.
valgrind --tool=lackey --trace-mem=yes --log-file="$tmp/log" "$tmp/prog" "$@" >/dev/null
grep -E '^(I  | [LSM] )' "$tmp/log" | xz --lzma2=preset=9e,dict=1MiB >"$out"
echo "$out: $(xz -dc "$out" | wc -l) records ($(wc -c <"$out") bytes)" >&2
