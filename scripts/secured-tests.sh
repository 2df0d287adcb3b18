#!/usr/bin/env bash
# Runs the e2e, dead-letter and kill -9 tests again over TLS with SCRAM-SHA-512: a broker of
# its own with a SASL_SSL listener (KAFKA_SECURITY=sasl_ssl scripts/kafka.sh up, in its own
# services directory and ports), and the tests pointed at that listener with the client
# settings the script wrote (SHARECHECK_TEST_BROKERS, SHARECHECK_TEST_KAFKA_CLIENT; see
# tests/kafka_support). The broker is stopped and deleted afterwards, also on failure.
# scripts/test.sh runs it after the plaintext tests; extra arguments go to cargo test.
#
# Environment: SECURED_KAFKA_PORT (default 19192; the controller listens on +1 and the
# SASL_SSL listener on +2).
set -euo pipefail
cd "$(dirname "$0")/.."

port="${SECURED_KAFKA_PORT:-19192}"
shared="${SHARECHECK_SERVICES_DIR:-$HOME/.cache/sharecheck}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/sharecheck-secured.XXXXXX")"
broker() {
    SHARECHECK_SERVICES_DIR="$dir" KAFKA_PORT="$port" KAFKA_CONTROLLER_PORT="$((port + 1))" \
        KAFKA_SASL_SSL_PORT="$((port + 2))" KAFKA_SECURITY=sasl_ssl \
        KAFKA_DIST_ROOT="${KAFKA_DIST_ROOT:-$shared/kafka-dist}" scripts/kafka.sh "$@"
}
cleanup() {
    broker down --purge >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
echo "== the e2e, dead-letter and kill -9 tests over SASL_SSL (127.0.0.1:$((port + 2)))"
broker up
SHARECHECK_TEST_BROKERS="127.0.0.1:$((port + 2))" \
    SHARECHECK_TEST_KAFKA_CLIENT="$dir/kafka/client.toml" \
    cargo test --test kafka_e2e --test kafka_dead_letter --test kafka_crash "$@"
