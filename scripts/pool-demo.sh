#!/usr/bin/env bash
# A pool from its Bitcoin node to blocks on the chain, on one machine: a local btcd on
# regtest, a local Apache Kafka broker, the job maker (`sharecheck jobs`), a validator node
# (`sharecheck run`) and the block submitter (`sharecheck blocks`); then a tiny CPU miner
# (examples/regtest_miner.rs) mines BLOCKS blocks against the published jobs, and the chain's
# height is shown before and after.
#   scripts/pool-demo.sh [BLOCKS]          (default 5)
# Each run uses its own topics (sharecheck.pool.<time>.*). KAFKA_PORT and BTCD_RPC_PORT move
# the services, as for scripts/kafka.sh and scripts/btcd.sh; btcd on regtest starts a new
# chain at every start.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
blocks="${1:-5}"
kport="${KAFKA_PORT:-9092}"
bport="${BTCD_RPC_PORT:-18334}"
user="${BTCD_RPC_USER:-sharecheck}"
pass="${BTCD_RPC_PASS:-sharecheck}"
command -v go >/dev/null 2>&1 || {
    echo "pool-demo: Go is needed to build btcd (apt-get install golang-go)" >&2
    exit 1
}

echo "== building sharecheck and the demo miner (release)"
cargo build --release --quiet --bin sharecheck --example regtest_miner
bin="$root/target/release/sharecheck"
miner="$root/target/release/examples/regtest_miner"

echo "== starting btcd (regtest) on 127.0.0.1:$bport (the first start builds it with Go)"
scripts/btcd.sh up
echo "== starting Apache Kafka on 127.0.0.1:$kport (the first start downloads it with Maven)"
scripts/kafka.sh up

work="$(mktemp -d /tmp/sharecheck-pool.XXXXXX)"
run="pool.$(date +%s)"
cat >"$work/pool.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$kport"
group_id = "sharecheck.$run"

[kafka.topics]
shares = "sharecheck.$run.shares"
jobs = "sharecheck.$run.jobs"
verdicts = "sharecheck.$run.verdicts"
blocks = "sharecheck.$run.blocks"
dead_letter = "sharecheck.$run.dead-letter"
templates = "sharecheck.$run.templates"
partitions = 2

[bitcoind]
url = "http://127.0.0.1:$bport"
user = "$user"
password = "$pass"

[jobs]
# The regtest address of the tests' fixed key (scripts/btcd.sh mines to it too).
payout_address = "mrpzkFWSnJuT1YNpTY3dNZPiutipTAd8pg"
network = "regtest"
poll_ms = 100

[backend.batch]
max_wait_ms = 1

[metrics]
listen = ""
TOML
sc() { "$bin" --config "$work/pool.toml" "$@"; }
sc topics create >/dev/null
# One block, so that the chain has a tip that a template can build on.
scripts/btcd.sh cli generate 1 >/dev/null
height() { scripts/btcd.sh cli getblockcount; }

echo "== starting the job maker, a validator node and the block submitter"
"$bin" --config "$work/pool.toml" jobs 2>"$work/jobs.log" &
p_jobs=$!
"$bin" --config "$work/pool.toml" run 2>"$work/node.log" &
p_node=$!
"$bin" --config "$work/pool.toml" blocks 2>"$work/blocks.log" &
p_blocks=$!
stop() {
    kill -TERM $p_jobs $p_node $p_blocks 2>/dev/null || true
    wait $p_jobs $p_node $p_blocks 2>/dev/null || true
}
trap stop EXIT

before=$(height)
echo "== mining $blocks blocks (chain height $before)"
"$miner" "$work/pool.toml" "$blocks"
after=$(height)
stop
trap - EXIT

echo
echo "== result"
echo "chain height $before -> $after"
grep -h "block submitter stopped\|job maker stopped" "$work/blocks.log" "$work/jobs.log" || true
echo "logs: $work/{jobs,node,blocks}.log"
echo "Stop the local services with: scripts/btcd.sh down && scripts/kafka.sh down"
