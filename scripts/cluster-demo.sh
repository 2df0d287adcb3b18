#!/usr/bin/env bash
# Three validator nodes on one machine, balanced through ZooKeeper by capacity: a local
# ZooKeeper and Kafka broker, a 12-partition shares topic, nodes "big" (capacity 4),
# "small-1" and "small-2" (capacity 1 each), a generated load sent through Kafka, then
# `sharecheck cluster status`.
#   scripts/cluster-demo.sh [SHARES]          (default 50000)
# ZK_PORT and KAFKA_PORT (and SHARECHECK_SERVICES_DIR) move the local services as for
# scripts/zookeeper.sh and scripts/kafka.sh; SHARECHECK_BIN runs a given binary. Each run
# uses its own topics and group.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
shares="${1:-50000}"
zk="127.0.0.1:${ZK_PORT:-2181}"
kafka="127.0.0.1:${KAFKA_PORT:-9092}"

# SHARECHECK_BIN: an already built sharecheck instead of building the release one.
bin="${SHARECHECK_BIN:-}"

# Everything the demo needs, checked before the build (the first build takes minutes).
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
if [ -z "$bin" ]; then
    svc_need scripts/cluster-demo.sh build zookeeper
else
    svc_need scripts/cluster-demo.sh zookeeper
fi

if [ -z "$bin" ]; then
    echo "== building sharecheck (release; the first build takes several minutes)"
    cargo build --release
    bin="$root/target/release/sharecheck"
fi

echo "== starting ZooKeeper on $zk and Apache Kafka on $kafka"
scripts/services.sh up

work="$(mktemp -d /tmp/sharecheck-cluster.XXXXXX)"
run="cluster.$(date +%s)"
cat >"$work/cluster.toml" <<TOML
[kafka]
brokers = "$kafka"
group_id = "sharecheck.$run"

[kafka.topics]
shares = "sharecheck.$run.shares"
jobs = "sharecheck.$run.jobs"
verdicts = "sharecheck.$run.verdicts"
blocks = "sharecheck.$run.blocks"
dead_letter = "sharecheck.$run.dead-letter"
partitions = 12

[balance]
mode = "zookeeper"
zookeeper = "$zk"
group = "$run"

[metrics]
listen = ""
TOML
sc() { "$bin" --config "$work/cluster.toml" "$@"; }

echo "== creating topics"
sc topics create
echo "== generating $shares shares"
sc gen --shares "$shares" -o "$work/shares.jsonl"

# On separate hosts each node would measure its own backend; here the capacities are set so
# that the split is visible (and a node per host would not need --node-id).
echo "== starting three nodes: big (capacity 4), small-1 and small-2 (capacity 1)"
nodes=()
stop_nodes() {
    for p in "${nodes[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${nodes[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_nodes EXIT
for spec in big:4 small-1:1 small-2:1; do
    id="${spec%%:*}"
    "$bin" --config "$work/cluster.toml" run --node-id "$id" --capacity "${spec##*:}" \
        2>"$work/$id.log" &
    nodes+=("$!")
done

echo "== sending the shares through Kafka and reading the verdicts back"
sc send "$work/shares.jsonl"
sc receive --count "$shares" --timeout 300 >"$work/verdicts.jsonl"

# The nodes store an offset once its verdicts are acknowledged and librdkafka commits the
# stored offsets every auto.commit.interval.ms (5 s): wait for that commit, so that the
# table shows the drained group rather than the lag of a moment ago.
sleep 6
echo
echo "== sharecheck cluster status"
sc cluster status

stop_nodes
trap - EXIT
echo
echo "config: $work/cluster.toml   node logs: $work/*.log"
echo "Stop the local services with: scripts/services.sh down"
