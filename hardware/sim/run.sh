#!/usr/bin/env bash
# Starts the simulated card: builds the Verilator model if needed, makes the two named pipes
# and serves them in the foreground. Point backend.fpga.h2c / c2h at the printed paths.
#   hardware/sim/run.sh [DIR]     (default DIR: /tmp/sharecheck-fpga)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-/tmp/sharecheck-fpga}"
sim="$here/../../target/fpga-sim/sharecheck-fpga-sim"
"$here/build.sh" "$sim" >&2
mkdir -p "$dir"
for p in h2c c2h; do
    [ -p "$dir/$p" ] || { rm -f "$dir/$p"; mkfifo "$dir/$p"; }
done
echo "simulated card: h2c = $dir/h2c, c2h = $dir/c2h" >&2
exec "$sim" "$dir/h2c" "$dir/c2h"
