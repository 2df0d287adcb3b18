#!/usr/bin/env bash
# Synthesis of the FPGA design with Yosys (and nextpnr-ice40 for timing), reports under
# target/fpga-synth/. Three runs:
#   1. ice40: one round stage of the pipeline (stage_top.v: sha256_pipe, ROUNDS=1) placed and routed on an
#      iCE40 HX8K with nextpnr-ice40: the achievable clock of a stage (every stage of the
#      pipeline is one such round, so this is the clock of the whole pipeline on that family).
#   2. ice40: one full compression (sha256_pipe, 64 rounds), synthesised for area (LUTs and
#      flip-flops); the core is three of them.
#   3. xilinx (optional, SYNTH_XILINX=1): the whole core for a 7-series/UltraScale part.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/fpga-synth"
rtl="$root/hardware/rtl"
mkdir -p "$out"
for tool in yosys nextpnr-ice40; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "$tool not found: apt-get install -y yosys nextpnr-ice40" >&2
        exit 1
    }
done

echo "== 1. one round stage on iCE40 HX8K (yosys synth_ice40 + nextpnr-ice40)"
yosys -q -l "$out/stage_ice40.yosys.log" -p "
    read_verilog $rtl/sha256_pipe.v $here/stage_top.v
    synth_ice40 -top stage_top -json $out/stage_ice40.json
    tee -o $out/stage_ice40.stat stat"
nextpnr-ice40 --hx8k --package ct256 --json "$out/stage_ice40.json" --freq 100 \
    --pcf-allow-unconstrained --timing-allow-fail \
    --report "$out/stage_ice40.report.json" >"$out/stage_ice40.nextpnr.log" 2>&1 || {
    echo "nextpnr-ice40 failed; see $out/stage_ice40.nextpnr.log" >&2
    tail -20 "$out/stage_ice40.nextpnr.log" >&2
    exit 1
}
grep -E "Max frequency for clock" "$out/stage_ice40.nextpnr.log" | tail -1

echo "== 2. one compression (64 stages) on iCE40, area"
yosys -q -l "$out/pipe_ice40.yosys.log" -p "
    read_verilog $rtl/sha256_pipe.v
    chparam -set META_W 1 sha256_pipe
    synth_ice40 -top sha256_pipe
    tee -o $out/pipe_ice40.stat stat"
grep -E "SB_LUT4|SB_DFF|SB_CARRY|Number of cells" "$out/pipe_ice40.stat" | sed 's/^ */  /'

if [ "${SYNTH_XILINX:-0}" = 1 ]; then
    echo "== 3. whole core, synth_xilinx"
    yosys -q -l "$out/core_xilinx.yosys.log" -p "
        read_verilog $rtl/sha256_pipe.v $rtl/sharecheck_core.v
        synth_xilinx -top sharecheck_core -flatten
        tee -o $out/core_xilinx.stat stat"
    grep -E "LUT|FD|CARRY|Number of cells" "$out/core_xilinx.stat" | sed 's/^ */  /'
fi
echo "reports in $out"
