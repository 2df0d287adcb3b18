#!/usr/bin/env bash
# Miners through the Stratum V1 gateway: a local Apache Kafka broker, the topics, one
# validator node, one job on the jobs topic, the gateway (`sharecheck stratum`) on
# 127.0.0.1:3333, and `sharecheck mine` connecting sessions that really mine and submit.
#   scripts/stratum-demo.sh [SESSIONS] [SUBMITS_PER_S] [SECONDS]   (default 20 200 10)
# KEEP=1 leaves the gateway and the node running afterwards, for a miner of your own
# (stratum+tcp://127.0.0.1:3333, any worker name) until Ctrl-C.
# STRATUM_PORT (default 3333) and KAFKA_PORT (default 9092) move the gateway and the broker;
# SHARECHECK_BIN runs a given binary instead of building the release one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sessions="${1:-20}"
rate="${2:-200}"
seconds="${3:-10}"
port="${KAFKA_PORT:-9092}"
sport="${STRATUM_PORT:-3333}"

bin="${SHARECHECK_BIN:-}"
# shellcheck source=lib.sh
. "$root/scripts/lib.sh"
if [ -z "$bin" ]; then
    svc_need scripts/stratum-demo.sh build
    echo "== building sharecheck (release; the first build takes several minutes)"
    cargo build --release
    bin="$root/target/release/sharecheck"
else
    svc_need scripts/stratum-demo.sh
fi

echo "== starting Apache Kafka on 127.0.0.1:$port (the first start downloads it with Maven)"
scripts/kafka.sh up

work="$(mktemp -d /tmp/sharecheck-stratum.XXXXXX)"
run="stratum.$(date +%s)"
cat >"$work/stratum.toml" <<TOML
[kafka]
brokers = "127.0.0.1:$port"
group_id = "sharecheck.$run"

[kafka.topics]
shares = "sharecheck.$run.shares"
jobs = "sharecheck.$run.jobs"
verdicts = "sharecheck.$run.verdicts"
blocks = "sharecheck.$run.blocks"
dead_letter = "sharecheck.$run.dead-letter"
templates = "sharecheck.$run.templates"
replies = "sharecheck.$run.replies"
sharelog = "sharecheck.$run.sharelog"
partitions = 4
reply_partitions = 4

[stratum]
listen = "127.0.0.1:$sport"
# Low enough for CPU mining: 2^-24, one hash in 256 meets it.
start_difficulty = 5.960464477539063e-8
min_difficulty = 1e-12
# Vardiff off: the sessions mine at the difficulty they suggest (a load test measures the
# gateway, not how fast this CPU can hash at a rising difficulty).
shares_per_minute = 0.0
metrics_listen = ""

[metrics]
listen = ""

[log]
level = "info"
TOML
sc() { "$bin" --config "$work/stratum.toml" "$@"; }

echo "== creating topics"
sc topics create
echo "== publishing a job (a made-up block on a made-up chain; network difficulty 1)"
ntime="$(printf '%08x' "$(date +%s)")"
branch='["'"$(printf 'ab%.0s' $(seq 32))"'"]'
prev="$(printf '11%.0s' $(seq 32))"
printf '{"job":{"job_id":"demo1","prevhash":"%s","coinb1":"%s","coinb2":"%s","merkle_branch":%s,"version":"20000000","nbits":"1d00ffff","ntime":"%s","clean_jobs":true}}\n' \
    "$prev" "$(printf '01%.0s' $(seq 42))" "$(printf '02%.0s' $(seq 40))" "$branch" "$ntime" >"$work/job.jsonl"
sc send "$work/job.jsonl"

echo "== starting a validator node and the gateway on 127.0.0.1:$sport"
"$bin" --config "$work/stratum.toml" run 2>"$work/node.log" &
node=$!
"$bin" --config "$work/stratum.toml" stratum 2>"$work/gateway.log" &
gateway=$!
trap 'kill -TERM $gateway $node 2>/dev/null || true; wait $gateway $node 2>/dev/null || true' EXIT
# Ready: the gateway listens and the node holds (and has rebuilt) its 4 partitions.
for _ in $(seq 300); do
    if grep -q "stratum gateway listening" "$work/gateway.log" &&
        [ "$(grep -c "duplicate sets rebuilt" "$work/node.log")" -ge 4 ]; then
        break
    fi
    kill -0 "$gateway" 2>/dev/null || { cat "$work/gateway.log"; exit 1; }
    kill -0 "$node" 2>/dev/null || { cat "$work/node.log"; exit 1; }
    sleep 0.1
done

echo "== sharecheck mine: $sessions sessions, $rate submits/s for $seconds s"
sc mine --stratum "127.0.0.1:$sport" --sessions "$sessions" --rate "$rate" --duration "$seconds"

echo
echo "gateway log: $work/gateway.log   node log: $work/node.log"
if [ "${KEEP:-0}" = 1 ]; then
    echo "The gateway is at stratum+tcp://127.0.0.1:$sport (any worker name); Ctrl-C stops it."
    wait "$gateway" || true
fi
