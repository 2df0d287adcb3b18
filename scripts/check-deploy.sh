#!/usr/bin/env bash
# Checks the monitoring files of deploy/ offline, with Prometheus' own promtool:
#   deploy/prometheus/alerts.yml       promtool check rules (syntax, PromQL, templates)
#   deploy/prometheus/alerts_test.yml  promtool test rules (each alert's firing and quiet cases)
#   deploy/prometheus/prometheus.yml   promtool check config (and the rule file it loads)
#   deploy/grafana/sharecheck.json     parses as JSON, and every panel's PromQL expression
#                                      (template variables substituted) parses
# tests/prometheus.rs checks the same files against a real Prometheus scraping a real node.
# Installs Debian's prometheus package (promtool, and the server that test runs) when
# promtool is missing: apt-get, as root or with sudo. On a host that runs systemd the package
# also enables and starts a prometheus service on :9090. Exits non-zero if a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "== installing Debian's prometheus package (promtool)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus
fi
promtool --version 2>&1 | head -n 1

failed=0
check() {
    local what="$1"
    shift
    echo "== $what"
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAILED: $what"
        failed=1
    fi
}

dashboard=deploy/grafana/sharecheck.json

# The dashboard's expressions as Grafana sends them ($job, $instance, $__rate_interval and
# $__range substituted), one per line.
dashboard_exprs() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$dashboard" <<'EOF'
import json, sys
def walk(v):
    if isinstance(v, dict):
        if isinstance(v.get("expr"), str):
            yield v["expr"]
        for x in v.values():
            yield from walk(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x)
for e in walk(json.load(open(sys.argv[1]))["panels"]):
    print(e.replace("\n", " "))
EOF
    else
        jq -r '.panels | .. | objects | select(has("expr")) | .expr | gsub("\n"; " ")' "$dashboard"
    fi | sed -e 's/\$__rate_interval/30s/g' -e 's/\$__range/5m/g' \
        -e 's/\$job/sharecheck/g' -e 's/\$instance/.+/g'
}

# Every expression as a recording rule of a scratch rule file, which promtool parses.
check_dashboard_exprs() {
    local tmp n=0 expr
    tmp="$(mktemp -d)"
    {
        echo "groups:"
        echo "  - name: dashboard"
        echo "    rules:"
        while IFS= read -r expr; do
            n=$((n + 1))
            if [[ "$expr" == *'$'* ]]; then
                echo "a template variable check-deploy.sh does not know in: $expr" >&2
                return 1
            fi
            echo "      - record: dashboard:expr_$n"
            # A single-quoted YAML scalar: quotes doubled.
            echo "        expr: '${expr//\'/\'\'}'"
        done < <(dashboard_exprs)
    } >"$tmp/dashboard.yml" || {
        rm -rf "$tmp"
        return 1
    }
    echo "$n panel expressions"
    local rc=0
    [ "$n" -gt 0 ] && promtool check rules "$tmp/dashboard.yml" || rc=1
    rm -rf "$tmp"
    return "$rc"
}

check_json() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -m json.tool "$dashboard" >/dev/null
    else
        jq empty "$dashboard"
    fi
}

check "promtool check rules deploy/prometheus/alerts.yml" \
    promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" \
    promtool test rules deploy/prometheus/alerts_test.yml
check "promtool check config deploy/prometheus/prometheus.yml" \
    promtool check config deploy/prometheus/prometheus.yml
check "$dashboard is JSON" check_json
check "$dashboard: every panel expression parses (promtool)" check_dashboard_exprs

if [ "$failed" != 0 ]; then
    echo "== check-deploy: FAILED"
    exit 1
fi
echo "== check-deploy: all passed"
