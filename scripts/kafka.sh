#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for
# development and tests.
#
#   kafka.sh up                 start (no-op if already running), wait until ready
#   kafka.sh down [--purge]     stop; --purge also deletes the data dir
#   kafka.sh reset              stop and delete the data dir
#   kafka.sh status             exit 0 when running, 3 when not
#   kafka.sh logs [-f]          show (or follow) the broker log
#   kafka.sh selftest           create a topic, produce and consume one message
#   kafka.sh tool CLASS [ARGS]  run a Kafka CLI class, e.g.
#                               kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment:
#   SHARECHECK_SERVICES_DIR  state/cache root (default ~/.cache/sharecheck)
#   KAFKA_PORT               broker port (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller port (default KAFKA_PORT + 1, so 9093)
#   KAFKA_DIST_ROOT          where the Maven-resolved jars are cached (default
#                            $SHARECHECK_SERVICES_DIR/kafka-dist); point a second
#                            broker's services dir at the first one's cache to
#                            skip resolving them again
#   KAFKA_VERSION            release resolved from Maven Central (default 4.4.0)
#   KAFKA_HOME               use an unpacked Kafka 4.x distribution instead of Maven
#   KAFKA_HEAP_OPTS          broker heap (default -Xmx512m -Xms256m)
#   KAFKA_JVM_OPTS           broker JIT/GC flags (default C1-only + serial GC;
#                            set to "" for the JVM's/distribution's defaults)
#   KAFKA_START_TIMEOUT      seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT       seconds before SIGKILL on down (default 30)
#   KAFKA_SECURITY=sasl_ssl  also listen with TLS + SCRAM-SHA-512 on KAFKA_SASL_SSL_PORT
#                            (default KAFKA_PORT + 2): makes a CA, the broker's
#                            certificate and a SCRAM user `sharecheck` with a random
#                            password under $STATE_DIR/tls (openssl), and writes the
#                            matching client settings to $STATE_DIR/client.toml
#                            (paste into a config). SCRAM users are added when the
#                            storage is formatted: `reset` a broker first used without.
#   KAFKA_KERBEROS=1         with KAFKA_SECURITY=sasl_ssl: the SASL_SSL listener takes
#                            Kerberos (GSSAPI) too, from the local realm of
#                            scripts/kdc.sh (start it first, same
#                            SHARECHECK_SERVICES_DIR): the broker is
#                            kafka/127.0.0.1@REALM, and the client settings for the
#                            principal sharecheck@REALM go to
#                            $STATE_DIR/client-kerberos.toml (clients need
#                            KRB5_CONFIG=$SHARECHECK_SERVICES_DIR/kdc/krb5.conf);
#                            KAFKA_KDC_DIR names another kdc.sh state directory
#   KAFKA_SASL_SSL_PORT      the same listener with a keystore of your own:
#   KAFKA_SSL_KEYSTORE       the broker's PKCS12 keystore and
#   KAFKA_SSL_PASSWORD       its password; KAFKA_SCRAM_USERS (user:password,...) are
#                            the SCRAM users, added when the storage is first formatted
#
# Two brokers at once: give each its own SHARECHECK_SERVICES_DIR (data, logs,
# pid file, lock, cluster id) and KAFKA_PORT; the controller port follows the
# broker port unless KAFKA_CONTROLLER_PORT is set.
#
# Without KAFKA_HOME the broker runs straight from the Maven artifacts (no
# tarball is needed, which matters where only Maven Central is reachable):
#   org.apache.kafka:kafka_2.13      kafka.Kafka (server) and kafka.tools.StorageTool (format)
#   org.apache.kafka:kafka-tools     TopicCommand / ConsoleProducer / ConsoleConsumer (selftest)
#   org.apache.logging.log4j:log4j-slf4j-impl  slf4j 1.7 -> log4j2 binding so the broker logs to a file
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
# log4j version the broker's own poms use for 4.4.0; pinned for the
# binding so api/core/binding always match.
KAFKA_LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.25.5}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
# A test broker on a 2-core machine shared with compile jobs is bound by
# startup CPU, not throughput: C1-only JIT and the serial GC took cached
# startup from ~9 s to ~4-7 s there. Empty (not unset) restores defaults.
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS-"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

STATE_DIR="$SVC_ROOT/kafka"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
CONFIG="$STATE_DIR/server.properties"
LOG4J_CONFIG="$STATE_DIR/log4j2.properties"
TOOLS_LOG4J_CONFIG="$STATE_DIR/tools-log4j2.properties"
PID_FILE="$STATE_DIR/kafka.pid"
SERVER_LOG="$LOG_DIR/server.log"
OUT_LOG="$LOG_DIR/kafka.out"
DIST_DIR="${KAFKA_DIST_ROOT:-$SVC_ROOT/kafka-dist}/$KAFKA_VERSION"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
# The config path is unique per state dir, so it identifies "our" JVM in
# /proc/<pid>/cmdline even if the pid gets reused.
PID_MARKER="$CONFIG"

# --- distribution -----------------------------------------------------------

# Set by resolve_dist: either a KAFKA_HOME or the Maven-built classpath.
KAFKA_MODE=""
KAFKA_CLASSPATH=""

use_kafka_home() {
    [[ -n "${KAFKA_HOME:-}" ]] || return 1
    local jar
    jar="$(compgen -G "$KAFKA_HOME/libs/kafka_2.*-*.jar" | grep -v -e '-test' -e '-sources' -e '-javadoc' | head -n 1 || true)"
    if [[ ! -x "$KAFKA_HOME/bin/kafka-run-class.sh" || -z "$jar" ]]; then
        svc_log "warning: KAFKA_HOME=$KAFKA_HOME is not a Kafka installation (no bin/kafka-run-class.sh or libs/kafka_2.*.jar); using Maven artifacts"
        return 1
    fi
    # kafka_2.13-4.4.0.jar -> 4.4.0; 3.x lacks the KRaft-only defaults and
    # the log4j2 setup used here.
    local ver="${jar##*/kafka_2.*-}"
    ver="${ver%.jar}"
    if [[ "${ver%%.*}" =~ ^[0-9]+$ ]] && ((${ver%%.*} < 4)); then
        svc_die "KAFKA_HOME=$KAFKA_HOME is Kafka $ver; Kafka 4.x is required"
    fi
    KAFKA_MODE=home
    KAFKA_VERSION="$ver"
}

write_pom() {
    cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: only used to resolve the broker's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sharecheck</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- Only needed by the connect-plugin-path tool; pulls in Jetty,
             Jersey and friends (~40 jars) that nothing here uses. -->
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.6.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
}

# Resolves the jars once into $DIST_DIR. The classpath file is written last
# and is the "cache complete" marker; the pom is compared too so editing the
# dependency list above invalidates the cache.
resolve_maven() {
    local pom="$DIST_DIR/pom.xml" cpfile="$DIST_DIR/classpath" newpom
    newpom="$(write_pom)"
    if [[ -s "$cpfile" && -f "$pom" && "$(<"$pom")" == "$newpom" ]]; then
        KAFKA_CLASSPATH="$(<"$cpfile")"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        svc_die "mvn not found (needed once to download Kafka $KAFKA_VERSION from Maven Central); $SVC_APT_HINT"
    svc_log "kafka: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven into $DIST_DIR (first run only)"
    mkdir -p "$DIST_DIR"
    rm -rf "$DIST_DIR/libs.tmp" "$cpfile"
    printf '%s\n' "$newpom" >"$pom"
    if ! mvn -B -q -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$DIST_DIR/libs.tmp" \
        >"$DIST_DIR/maven.log" 2>&1; then
        svc_tail_hint "$DIST_DIR/maven.log"
        svc_die "Maven could not resolve Kafka $KAFKA_VERSION (full log: $DIST_DIR/maven.log)"
    fi
    [[ -f "$DIST_DIR/libs.tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
        svc_die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing in $DIST_DIR/libs.tmp"
    rm -rf "$DIST_DIR/libs"
    mv "$DIST_DIR/libs.tmp" "$DIST_DIR/libs"
    local -a jars=("$DIST_DIR"/libs/*.jar)
    local IFS=:
    printf '%s\n' "${jars[*]}" >"$cpfile.tmp"
    mv "$cpfile.tmp" "$cpfile"
    KAFKA_CLASSPATH="$(<"$cpfile")"
}

resolve_dist() {
    [[ -z "$KAFKA_MODE" ]] || return 0
    if use_kafka_home; then
        return 0
    fi
    KAFKA_MODE=maven
    resolve_maven
}

# Builds the command line for a Kafka main class into KAFKA_CMD:
#   kafka_cmd LOG4J_CONFIG HEAP_OPTS PERF_OPTS MAIN_CLASS [ARGS...]
# PERF_OPTS empty means the JVM's (or the distribution's) defaults. With
# KAFKA_HOME this goes through the distribution's own launcher so its JVM
# flags and libs apply; `env` keeps it a single exec chain, so a background
# start still records the JVM's own pid.
KAFKA_CMD=()
JAVA_BIN=""
kafka_cmd() {
    local log4j="$1" heap="$2" perf="$3"
    shift 3
    if [[ "$KAFKA_MODE" == home ]]; then
        # kafka-run-class.sh adds its own G1 flags unless
        # KAFKA_JVM_PERFORMANCE_OPTS is set, so GC choices must go there
        # (two collectors on one command line make the JVM refuse to start).
        KAFKA_CMD=(env "KAFKA_HEAP_OPTS=$heap"
            "KAFKA_LOG4J_OPTS=-Dlog4j2.configurationFile=$log4j"
            "LOG_DIR=$LOG_DIR")
        if [[ -n "$perf" ]]; then
            KAFKA_CMD+=("KAFKA_JVM_PERFORMANCE_OPTS=$perf")
        fi
        KAFKA_CMD+=("$KAFKA_HOME/bin/kafka-run-class.sh" "$@")
        return 0
    fi
    [[ -n "$JAVA_BIN" ]] || JAVA_BIN="$(svc_java 17)"
    local -a jvm_flags
    read -r -a jvm_flags <<<"$heap $perf"
    KAFKA_CMD=("$JAVA_BIN" "${jvm_flags[@]}" -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=$log4j" "-Dkafka.logs.dir=$LOG_DIR"
        -cp "$KAFKA_CLASSPATH" "$@")
}

# Short-lived CLI JVMs: C1 only and serial GC start noticeably faster on a
# small machine and they never run long enough to benefit from C2.
kafka_tool() {
    kafka_cmd "$TOOLS_LOG4J_CONFIG" -Xmx256m "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" "$@"
    "${KAFKA_CMD[@]}"
}

# --- configuration ----------------------------------------------------------

# KAFKA_SECURITY=sasl_ssl: a CA, the broker's certificate (for 127.0.0.1 and localhost)
# and a SCRAM user, made once under $STATE_DIR/tls, and the client settings that match.
make_security() {
    [[ "${KAFKA_SECURITY:-}" == sasl_ssl ]] || {
        [[ -z "${KAFKA_SECURITY:-}" ]] || svc_die "KAFKA_SECURITY must be sasl_ssl (or unset)"
        return 0
    }
    command -v openssl >/dev/null 2>&1 || svc_die "KAFKA_SECURITY=sasl_ssl needs openssl"
    local tls="$STATE_DIR/tls"
    mkdir -p "$tls"
    chmod 700 "$tls"
    if [[ ! -f "$tls/broker.p12" ]]; then
        svc_log "kafka: making a CA and the broker's certificate in $tls"
        (
            cd "$tls"
            umask 077
            openssl rand -hex 16 >keystore.password
            openssl rand -hex 16 >client.password
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
                -subj "/CN=sharecheck local CA" 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr \
                -subj "/CN=127.0.0.1" 2>/dev/null
            echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >san.cnf
            openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out broker.pem -days 3650 -extfile san.cnf 2>/dev/null
            openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem \
                -out broker.p12 -passout "pass:$(<keystore.password)"
        ) || svc_die "making the certificates in $tls failed"
    fi
    KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 2))}"
    KAFKA_SSL_KEYSTORE="$tls/broker.p12"
    KAFKA_SSL_PASSWORD="$(<"$tls/keystore.password")"
    KAFKA_SCRAM_USERS="sharecheck:$(<"$tls/client.password")${KAFKA_SCRAM_USERS:+,$KAFKA_SCRAM_USERS}"
    cat >"$STATE_DIR/client.toml" <<EOF
# Written by scripts/kafka.sh (KAFKA_SECURITY=sasl_ssl): the client settings of its
# SASL_SSL listener, to paste into a sharecheck config, with
#   [kafka] brokers = "127.0.0.1:$KAFKA_SASL_SSL_PORT"
[kafka.client]
"security.protocol" = "sasl_ssl"
"ssl.ca.location" = "$tls/ca.pem"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "sharecheck"
[kafka.secret_files]
"sasl.password" = "$tls/client.password"
EOF
    make_kerberos "$tls"
}

# KAFKA_KERBEROS=1: the broker's keytab and the realm's krb5.conf from scripts/kdc.sh, and
# the client settings for its principal sharecheck@REALM.
make_kerberos() {
    [[ "${KAFKA_KERBEROS:-}" == 1 ]] || return 0
    local kdc="${KAFKA_KDC_DIR:-$SVC_ROOT/kdc}" realm
    [[ -f "$kdc/kafka.keytab" && -f "$kdc/krb5.conf" ]] \
        || svc_die "KAFKA_KERBEROS=1 needs the local realm: SHARECHECK_SERVICES_DIR=$SVC_ROOT scripts/kdc.sh up"
    realm="$(awk '/default_realm/ { print $3; exit }' "$kdc/krb5.conf")"
    KAFKA_KRB5_CONF="$kdc/krb5.conf"
    KAFKA_KRB5_KEYTAB="$kdc/kafka.keytab"
    KAFKA_KRB5_PRINCIPAL="kafka/127.0.0.1@$realm"
    KAFKA_JVM_OPTS="$KAFKA_JVM_OPTS -Djava.security.krb5.conf=$KAFKA_KRB5_CONF"
    cat >"$STATE_DIR/client-kerberos.toml" <<EOF
# Written by scripts/kafka.sh (KAFKA_SECURITY=sasl_ssl KAFKA_KERBEROS=1): Kerberos (GSSAPI)
# over the SASL_SSL listener, for a sharecheck built with --features gssapi, with
#   [kafka] brokers = "127.0.0.1:$KAFKA_SASL_SSL_PORT"
# and KRB5_CONFIG=$KAFKA_KRB5_CONF in its environment.
[kafka.client]
"security.protocol" = "sasl_ssl"
"ssl.ca.location" = "$1/ca.pem"
"sasl.mechanism" = "GSSAPI"
"sasl.kerberos.service.name" = "kafka"
"sasl.kerberos.principal" = "sharecheck@$realm"
"sasl.kerberos.keytab" = "$kdc/sharecheck.keytab"
EOF
}

write_configs() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    # Rewritten on every start so port changes via env take effect.
    # Static controller.quorum.voters (instead of a dynamic quorum formatted
    # with --standalone) keeps the controller endpoint out of the on-disk
    # metadata, so changing KAFKA_CONTROLLER_PORT later does not strand an
    # existing data dir.
    local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT"
    local advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
    local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then
        [[ -n "${KAFKA_SSL_KEYSTORE:-}" && -n "${KAFKA_SSL_PASSWORD:-}" ]] \
            || svc_die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE (PKCS12) and KAFKA_SSL_PASSWORD"
        listeners="$listeners,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
        advertised="$advertised,SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
        protocols="$protocols,SASL_SSL:SASL_SSL"
    fi
    cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh on every 'up'; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$DATA_DIR

# Test-friendly single-node settings: topics appear on first use, internal
# topics fit one broker, and consumer groups do not wait 3 s to rebalance.
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
# One partition instead of 50: creating __consumer_offsets is the slowest
# part of the first consumer-group join on a 2-core machine.
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then
        cat >>"$CONFIG" <<EOF

# The SASL_SSL listener (KAFKA_SASL_SSL_PORT): TLS with KAFKA_SSL_KEYSTORE, clients
# authenticated with SCRAM-SHA-512 (users from KAFKA_SCRAM_USERS, added when the storage
# is formatted).
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_SSL_KEYSTORE
ssl.keystore.password=$KAFKA_SSL_PASSWORD
ssl.key.password=$KAFKA_SSL_PASSWORD
sasl.enabled.mechanisms=SCRAM-SHA-512${KAFKA_KRB5_KEYTAB:+,GSSAPI}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    fi
    if [[ -n "${KAFKA_KRB5_KEYTAB:-}" ]]; then
        cat >>"$CONFIG" <<EOF
# Kerberos (KAFKA_KERBEROS=1) on the same listener: the broker's own principal and keytab.
sasl.kerberos.service.name=kafka
listener.name.sasl_ssl.gssapi.sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab="$KAFKA_KRB5_KEYTAB" principal="$KAFKA_KRB5_PRINCIPAL";
EOF
    fi

    # Broker log: one file per start (the previous one is kept as .prev),
    # size-capped in case a long-running broker logs a lot.
    cat >"$LOG4J_CONFIG" <<'EOF'
status = warn
name = kafka-server
# Kafka shuts down from its own shutdown hook; log4j's hook would race it
# and cut the log before the final shutdown lines.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
EOF

    # CLI tools: warnings only, on stderr, so their stdout stays parseable.
    cat >"$TOOLS_LOG4J_CONFIG" <<'EOF'
status = warn
name = kafka-tools
# Clients log while the JVM is already exiting; without this log4j prints a
# "Unable to register Log4j shutdown hook" warning on every tool run.
shutdownHook = disable
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
}

# KRaft needs the log dir formatted with a cluster id exactly once. The id is
# a random 16-byte UUID in Kafka's base64url form; generated here rather
# than with `StorageTool random-uuid` to save a JVM start. Kafka's own
# generator avoids ids starting with '-' (they look like CLI flags), so do
# the same.
format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$id" == -* ]] || break
    done
    svc_log "kafka: formatting KRaft storage in $DATA_DIR (cluster id $id)"
    local scram=() user
    if [[ -n "${KAFKA_SCRAM_USERS:-}" ]]; then
        for user in ${KAFKA_SCRAM_USERS//,/ }; do
            scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
        done
    fi
    if ! kafka_tool kafka.tools.StorageTool format --cluster-id "$id" --config "$CONFIG" \
        "${scram[@]}" >"$LOG_DIR/format.log" 2>&1; then
        svc_tail_hint "$LOG_DIR/format.log"
        svc_die "formatting KRaft storage failed (see $LOG_DIR/format.log)"
    fi
}

# --- commands ---------------------------------------------------------------

running_pid() { svc_running_pid "$PID_FILE" "$PID_MARKER"; }

# Ready = the port answers and this JVM has logged "Kafka Server started",
# which KafkaRaftServer only does once the broker is unfenced and serving
# metadata. The first successful check is remembered in READY_FILE because
# the log may have rolled over by the time `status` asks again.
READY_FILE="$STATE_DIR/ready.pid"
is_ready() {
    local pid="$1"
    svc_port_open "$KAFKA_PORT" || return 1
    [[ -f "$READY_FILE" && "$(<"$READY_FILE")" == "$pid" ]] && return 0
    if grep -q "Kafka Server started" "$SERVER_LOG" 2>/dev/null; then
        printf '%s\n' "$pid" >"$READY_FILE"
        return 0
    fi
    return 1
}

# wait_ready PID STOP_ON_TIMEOUT
wait_ready() {
    local pid="$1" stop_on_timeout="$2" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! running_pid >/dev/null; then
            svc_tail_hint "$OUT_LOG" "$SERVER_LOG"
            svc_die "kafka exited during startup (logs: $LOG_DIR)"
        fi
        is_ready "$pid" && return 0
        sleep 0.5
    done
    svc_tail_hint "$OUT_LOG" "$SERVER_LOG"
    if ((stop_on_timeout)); then
        # Do not leave a half-started JVM behind for the next attempt to
        # trip on.
        svc_stop kafka "$PID_FILE" "$PID_MARKER" "$KAFKA_STOP_TIMEOUT" || true
    fi
    svc_die "kafka not ready on $BOOTSTRAP within ${KAFKA_START_TIMEOUT}s (logs: $LOG_DIR)"
}

print_where() {
    svc_log "kafka: running (pid $1) on $BOOTSTRAP, controller 127.0.0.1:$KAFKA_CONTROLLER_PORT"
    svc_log "kafka: logs: $SERVER_LOG (stdout/stderr: $OUT_LOG), data: $DATA_DIR"
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    local pid
    if pid="$(running_pid)"; then
        # Already started (maybe by a concurrent caller that is still
        # waiting): make sure it is ready, then succeed without restarting.
        # It was not started by this call, so a timeout leaves it alone.
        wait_ready "$pid" 0
        print_where "$pid"
        return 0
    fi
    rm -f "$PID_FILE" "$READY_FILE"
    svc_fail_if_port_taken "$KAFKA_PORT" "Kafka broker" KAFKA_PORT
    svc_fail_if_port_taken "$KAFKA_CONTROLLER_PORT" "Kafka controller" KAFKA_CONTROLLER_PORT
    JAVA_BIN="$(svc_java 17)"
    resolve_dist
    make_security
    write_configs
    format_storage
    svc_rotate_log "$SERVER_LOG" "$OUT_LOG"
    local start=$SECONDS
    svc_log "kafka: starting Kafka $KAFKA_VERSION ($KAFKA_MODE) on $BOOTSTRAP"
    kafka_cmd "$LOG4J_CONFIG" "$KAFKA_HEAP_OPTS" "$KAFKA_JVM_OPTS" kafka.Kafka "$CONFIG"
    svc_spawn "$PID_FILE" "$OUT_LOG" "${KAFKA_CMD[@]}"
    pid="$(<"$PID_FILE")"
    wait_ready "$pid" 1
    svc_log "kafka: ready after $((SECONDS - start))s"
    print_where "$pid"
    if [[ -n "${KAFKA_SASL_SSL_PORT:-}" ]]; then
        svc_log "kafka: SASL_SSL (SCRAM-SHA-512${KAFKA_KRB5_KEYTAB:+, GSSAPI}) on 127.0.0.1:$KAFKA_SASL_SSL_PORT"
    fi
    if [[ "${KAFKA_SECURITY:-}" == sasl_ssl ]]; then
        svc_log "kafka: client settings for it: $STATE_DIR/client.toml"
    fi
}

cmd_down() {
    local purge
    purge="$(svc_purge_flag "$@")"
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    svc_stop kafka "$PID_FILE" "$PID_MARKER" "$KAFKA_STOP_TIMEOUT"
    rm -f "$READY_FILE"
    if ((purge)); then
        rm -rf "$DATA_DIR"
        svc_log "kafka: deleted data dir $DATA_DIR"
    fi
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if is_ready "$pid"; then
            print_where "$pid"
            return 0
        fi
        svc_log "kafka: pid $pid is running but not ready (yet) on $BOOTSTRAP; logs: $SERVER_LOG"
        return 1
    fi
    svc_log "kafka: not running (state: $STATE_DIR)"
    # LSB convention: 3 = program is not running.
    return 3
}

cmd_selftest() {
    local pid
    if ! pid="$(running_pid)" || ! is_ready "$pid"; then
        svc_die "kafka is not running; start it with: $0 up"
    fi
    resolve_dist
    local topic="sharecheck-selftest-$$-$RANDOM" msg got start=$SECONDS
    msg="hello-$(date +%s)-$RANDOM"
    svc_log "selftest: create topic $topic"
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --create --topic "$topic" --partitions 1 --replication-factor 1 >/dev/null
    svc_log "selftest: produce '$msg'"
    printf '%s\n' "$msg" | kafka_tool org.apache.kafka.tools.ConsoleProducer \
        --bootstrap-server "$BOOTSTRAP" --topic "$topic"
    svc_log "selftest: consume"
    got="$(kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" \
        --topic "$topic" --from-beginning --max-messages 1 --timeout-ms 30000 2>"$LOG_DIR/selftest-consumer.err" || true)"
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
        --delete --topic "$topic" >/dev/null || svc_log "selftest: warning: could not delete $topic"
    if [[ "$got" != "$msg" ]]; then
        svc_tail_hint "$LOG_DIR/selftest-consumer.err"
        svc_die "selftest: expected '$msg', consumed '${got}'"
    fi
    svc_log "selftest: OK, round trip through $BOOTSTRAP in $((SECONDS - start))s"
}

cmd_tool() {
    (($# >= 1)) || svc_die "usage: $0 tool MAIN_CLASS [ARGS...]"
    mkdir -p "$LOG_DIR"
    [[ -f "$TOOLS_LOG4J_CONFIG" ]] || write_configs
    resolve_dist
    kafka_tool "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) shift && cmd_down "$@" ;;
reset) cmd_down --purge ;;
status) cmd_status ;;
logs) shift && svc_show_log "$SERVER_LOG" "$@" ;;
selftest) cmd_selftest ;;
tool) shift && cmd_tool "$@" ;;
*) svc_usage "$0" ;;
esac
