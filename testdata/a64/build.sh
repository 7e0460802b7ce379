#!/usr/bin/env bash
# Builds the A64 test programs: testdata/a64/*.elf from their sources,
# with the Debian cross compiler (apt-get install gcc-aarch64-linux-gnu).
# The ELF files are committed, so `go test ./...` runs them without the
# compiler; TestProgramsReproducible rebuilds them when it is present and
# checks the bytes are the same.
#
# Usage: testdata/a64/build.sh [OUTDIR]   (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cc=${CROSS_COMPILE:-aarch64-linux-gnu-}gcc
cd "$here"
# -mgeneral-regs-only: no FP/SIMD; -mstrict-align: the programs start with
# the MMU off, where every data access is Device and must be aligned;
# armv8.1-a for the LSE atomics; no outline atomics (no libgcc), no PAC/BTI.
cflags=(-O2 -g0 -ffreestanding -fno-builtin -nostdlib -static -mgeneral-regs-only -mstrict-align
	-march=armv8.1-a -mno-outline-atomics -mbranch-protection=none -fno-pic -no-pie
	-fno-stack-protector -fno-asynchronous-unwind-tables -ffile-prefix-map="$here"=.
	-Wall -Wextra -Wno-unused-parameter -Werror -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,--discard-all -T link.ld -I.)
common=(start.S lib.c rt.S mmu.c probes.S harness.c)
build() {
	local name=$1
	shift
	"$cc" "${cflags[@]}" -o "$out/$name.elf" "${common[@]}" "$@" &
}
build hello hello.c
build isa isa.c
build faults faults.c
build tlbi tlbi.c
build hwupdate hwupdate.c
build torture torture.c
build loop loop.c
build recurse recurse.c recurse_g.S
build el2ctl el2ctl.c
build el2traps el2traps.c
wait
