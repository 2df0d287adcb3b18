#!/usr/bin/env bash
# The whole system on one machine: a local Apache Kafka broker, the topics, one validator
# node, a generated load sent through Kafka, and the verdicts read back.
#   scripts/demo.sh [SHARES]          (default 200000)
# Each run uses its own topics (sharecheck.demo.<time>.*), so runs never see each other.
# KAFKA_PORT (default 9092) moves the broker, as for scripts/kafka.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
shares="${1:-200000}"
# The broker's port, as scripts/kafka.sh reads it.
port="${KAFKA_PORT:-9092}"

# Everything the demo needs, checked before the build (the first build takes minutes).
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
svc_need scripts/demo.sh build

echo "== building sharecheck (release; the first build takes several minutes)"
cargo build --release
bin="$root/target/release/sharecheck"

echo "== starting Apache Kafka on 127.0.0.1:$port (the first start downloads it with Maven)"
scripts/kafka.sh up

work="$(mktemp -d /tmp/sharecheck-demo.XXXXXX)"
run="demo.$(date +%s)"
cat >"$work/demo.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$port"
group_id = "sharecheck.$run"

[kafka.topics]
shares = "sharecheck.$run.shares"
jobs = "sharecheck.$run.jobs"
verdicts = "sharecheck.$run.verdicts"
blocks = "sharecheck.$run.blocks"
dead_letter = "sharecheck.$run.dead-letter"
partitions = 4

[metrics]
listen = ""

[log]
level = "info"
TOML
sc() { "$bin" --config "$work/demo.toml" "$@"; }

echo "== creating topics"
sc topics create
echo "== generating $shares shares (jobs, really mined shares and every kind of reject)"
sc gen --shares "$shares" --mode mixed -o "$work/shares.jsonl"

echo "== starting a validator node"
# Started directly (not through the sc function) so that $! is the node itself.
"$bin" --config "$work/demo.toml" run 2>"$work/node.log" &
node=$!
trap 'kill -TERM $node 2>/dev/null || true; wait $node 2>/dev/null || true' EXIT

echo "== sending the shares through Kafka and reading the verdicts back"
start=$(date +%s.%N)
sc send "$work/shares.jsonl"
sc receive --count "$shares" --timeout 300 >"$work/verdicts.jsonl"
end=$(date +%s.%N)

kill -TERM "$node"
wait "$node" || true
trap - EXIT
grep -h "node stopped" "$work/node.log" || true

echo
echo "== result"
awk -v n="$shares" -v s="$start" -v e="$end" '
    { if (match($0, /"status":"[a-z_]+"/)) { st = substr($0, RSTART + 10, RLENGTH - 11); c[st]++ } }
    END {
        printf "%d verdicts for %d shares in %.1f s end to end (%.0f shares/s, send to last verdict)\n", NR, n, e - s, n / (e - s)
        for (k in c) printf "  %-15s %d\n", k, c[k]
    }' "$work/verdicts.jsonl"
echo
echo "verdicts: $work/verdicts.jsonl   node log: $work/node.log"
echo "Your own cluster: set [kafka] brokers (and topic names) in a copy of config/sharecheck.toml,"
echo "then: sharecheck --config my.toml topics create && sharecheck --config my.toml run"
echo "Stop the local broker with: scripts/kafka.sh down"
