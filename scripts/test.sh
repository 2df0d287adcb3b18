#!/usr/bin/env bash
# Runs every test, with the real parts they need: installs what this machine lacks (Debian
# packages: Java and Maven for the Kafka broker, ZooKeeper's jars, Mesa's lavapipe and PoCL
# for the GPU code paths, Verilator for the simulated FPGA card), starts the local ZooKeeper
# and Kafka broker (scripts/services.sh; ZK_PORT and KAFKA_PORT move them, and the tests
# follow), then `cargo test`, then the e2e, dead-letter and kill -9 tests again over a
# SASL_SSL broker (scripts/secured-tests.sh) and Kafka and ZooKeeper with Kerberos (built
# with --features gssapi); not when arguments are given, SHARECHECK_SECURED_TESTS=0
# leaves them out. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

# libzookeeper-java: the server's jars only; scripts/zookeeper.sh runs it itself (the
# zookeeper package would also start a system service on port 2181).
pkgs="mesa-vulkan-drivers pocl-opencl-icd ocl-icd-libopencl1 verilator libzookeeper-java libslf4j-java"
# librdkafka is built with TLS (OpenSSL, found with pkg-config); openssl makes the test CA.
pkgs="$pkgs libssl-dev pkg-config openssl"
# The gssapi feature's librdkafka links Cyrus SASL, and its ZooKeeper client MIT's GSSAPI
# (libgssapi's bindings are made with bindgen, so libclang); its Kerberos tests run a local
# MIT KDC (scripts/kdc.sh) and librdkafka's kinit.
pkgs="$pkgs libsasl2-dev libsasl2-modules-gssapi-mit libkrb5-dev libclang-dev"
pkgs="$pkgs krb5-kdc krb5-admin-server krb5-user"
command -v java >/dev/null 2>&1 || pkgs="$pkgs openjdk-17-jre-headless"
command -v mvn >/dev/null 2>&1 || pkgs="$pkgs maven"
command -v go >/dev/null 2>&1 || pkgs="$pkgs golang-go"
missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $missing
fi
# Mesa warns without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

# The Kafka and ZooKeeper tests start the services themselves; starting them here keeps the
# broker's first download (Maven) out of any test's time limit.
scripts/services.sh up
# The btcd tests each start a node of their own on free ports; building btcd here (go install,
# once per machine, about 30 s) keeps the build out of any test's time limit.
scripts/btcd.sh install

# Figures the tests measure (verdicts repeated after a kill -9, shutdown times, ...) are
# appended here by the tests and printed after the run, passed or failed.
reports="${CARGO_TARGET_DIR:-target}/tmp/test-reports.txt"
rm -f "$reports"
print_reports() {
    if [ -s "$reports" ]; then
        echo "== figures reported by the tests"
        cat "$reports"
    fi
}
trap print_reports EXIT
# The dashboard and alert rules of deploy/, offline: promtool check/test rules, check config,
# the dashboard's JSON and PromQL. It installs Debian's prometheus package when promtool is
# missing; tests/prometheus.rs runs that server against a real node.
scripts/check-deploy.sh
# The library as a stratum server embeds it: without the GPU and FPGA backends and ZooKeeper.
cargo check --lib -p sharecheck --no-default-features
# Kerberos is a build option (cargo feature gssapi): it must build, and make clients.
cargo test --lib -p sharecheck --features gssapi -- kafka::access balance::auth
cargo test "$@"
if [ $# -eq 0 ] && [ "${SHARECHECK_SECURED_TESTS:-1}" = 1 ]; then
    scripts/secured-tests.sh
    # Kerberos end to end, the gssapi build: a KDC of the tests' own, a broker with a GSSAPI
    # listener and a ZooKeeper that requires Kerberos.
    cargo test -p sharecheck --features gssapi --test kafka_kerberos --test zk_auth kerberos
fi
# The Debian package: built (a release build), installed with dpkg, the installed binary and
# systemd units checked, purged again. It installs a package, so it needs root (CI runs as
# root); SHARECHECK_PACKAGE_TEST=0 leaves it out on a developer's machine.
if [ "${SHARECHECK_PACKAGE_TEST:-1}" = 1 ]; then
    if [ "$(id -u)" = 0 ]; then
        scripts/package-test.sh
    else
        echo "== package test not run: it needs root (dpkg -i); SHARECHECK_PACKAGE_TEST=0 silences this" >&2
        exit 1
    fi
fi
