#!/usr/bin/env bash
# Builds the Verilator model of the FPGA design into target/fpga-sim/sharecheck-fpga-sim
# (or $1). Rebuilds only when the RTL or the harness changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/fpga-sim/sharecheck-fpga-sim}"
rtl=("$root/hardware/rtl/sharecheck_core.v" "$root/hardware/rtl/sha256_pipe.v")
if ! command -v verilator >/dev/null 2>&1; then
    echo "verilator not found: install it with 'apt-get install -y verilator'" >&2
    exit 1
fi
if [ -x "$out" ]; then
    stale=0
    for f in "${rtl[@]}" "$here/sim_main.cpp" "$here/build.sh"; do
        [ "$f" -nt "$out" ] && stale=1
    done
    [ "$stale" = 0 ] && { echo "$out is up to date"; exit 0; }
fi
work="$(dirname "$out")/obj_dir"
mkdir -p "$work"
# Serialise concurrent builds (tests run in parallel).
exec 9>"$(dirname "$out")/.build.lock"
flock 9
verilator --cc --exe --build -j 2 -O2 --x-assign fast --x-initial fast --noassert \
    -Wno-fatal --top-module sharecheck_core -GDW=64 \
    -CFLAGS "-O2" --Mdir "$work" -o sharecheck-fpga-sim \
    "${rtl[@]}" "$here/sim_main.cpp" >"$work/build.log" 2>&1 || {
    tail -30 "$work/build.log" >&2
    exit 1
}
cp "$work/sharecheck-fpga-sim" "$out.tmp" && mv "$out.tmp" "$out"
echo "built $out"
