#!/usr/bin/env bash
# Brings all local services up or down together (CI, local test runs).
#
#   services.sh up       zookeeper, then kafka; stops zookeeper again if it
#                        started it and kafka fails
#   services.sh down     kafka, then zookeeper; tries both even if one fails
#   services.sh status   exit 0 only when all are running
#
# All options are the environment variables of kafka.sh and zookeeper.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cmd_up() {
    local zk_was_up=0
    if "$SCRIPT_DIR/zookeeper.sh" status >/dev/null 2>&1; then
        zk_was_up=1
    fi
    "$SCRIPT_DIR/zookeeper.sh" up
    if ! "$SCRIPT_DIR/kafka.sh" up; then
        # A CI job that fails here would otherwise leave a ZooKeeper JVM
        # running on the machine; one that was already up is left alone.
        if ((!zk_was_up)); then
            "$SCRIPT_DIR/zookeeper.sh" down || true
        fi
        echo "error: kafka failed to start" >&2
        return 1
    fi
}

cmd_down() {
    local rc=0
    "$SCRIPT_DIR/kafka.sh" down "$@" || rc=1
    "$SCRIPT_DIR/zookeeper.sh" down "$@" || rc=1
    return "$rc"
}

cmd_status() {
    local rc=0
    "$SCRIPT_DIR/zookeeper.sh" status || rc=$?
    "$SCRIPT_DIR/kafka.sh" status || rc=$?
    return "$rc"
}

case "${1:-}" in
up) cmd_up ;;
down) shift && cmd_down "$@" ;;
status) cmd_status ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
    exit 2
    ;;
esac
