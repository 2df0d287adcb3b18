#!/usr/bin/env bash
# Local standalone ZooKeeper for development and tests, run from Debian's
# `zookeeper` package jars but started directly (not via systemd/init), with
# its own config and data under the state dir.
#
#   zookeeper.sh up                start (no-op if already running), wait for `ruok` -> `imok`
#   zookeeper.sh down [--purge]    stop; --purge also deletes the data dir
#   zookeeper.sh reset             stop and delete the data dir
#   zookeeper.sh status            exit 0 when running, 3 when not
#   zookeeper.sh logs [-f]         show (or follow) the server log
#
# Environment:
#   SHARECHECK_SERVICES_DIR  state root (default ~/.cache/sharecheck)
#   ZK_PORT                  client port (default 2181)
#   ZK_JAVA_DIR              where the package's jars live (default /usr/share/java)
#   ZK_HEAP_OPTS             heap (default -Xmx256m)
#   ZK_START_TIMEOUT         seconds to wait for readiness (default 60)
#   ZK_STOP_TIMEOUT          seconds before SIGKILL on down (default 20)
#   ZK_AUTH=digest           the server refuses clients that do not authenticate with the
#                            digest scheme; a user `sharecheck` with a random password is
#                            written to $STATE_DIR/zookeeper.secret (chmod 600) and the
#                            matching settings to $STATE_DIR/client.toml
#   ZK_AUTH=sasl             the same with SASL DIGEST-MD5 (SASLAuthenticationProvider and a
#                            JAAS file, $STATE_DIR/jaas.conf, naming that user): the server
#                            refuses sessions that do not authenticate by SASL
#   ZK_AUTH=kerberos         the same with SASL GSSAPI (Kerberos) from the local realm of
#                            scripts/kdc.sh (start it first, same SHARECHECK_SERVICES_DIR,
#                            or ZK_KDC_DIR): the server is zookeeper/127.0.0.1@REALM, a
#                            session's identity sasl:<its principal>; client.toml says
#                            zookeeper_auth_scheme = "kerberos" (the node then needs
#                            KRB5_CONFIG and a ticket or KRB5_CLIENT_KTNAME, and a build
#                            with --features gssapi)
#   ZK_TLS=1                 ZK_PORT is ZooKeeper's secureClientPort, TLS only (there is no
#                            plaintext port): a CA, the server's certificate (127.0.0.1 and
#                            localhost) and a client certificate are made once with openssl under
#                            $STATE_DIR/tls (chmod 700, files 600), with the server's PKCS12
#                            keystore and truststore; the client settings go to
#                            $STATE_DIR/client.toml. Combines with ZK_AUTH.
#   ZK_TLS_CLIENT_AUTH       with ZK_TLS=1, the server's ssl.clientAuth: need (default: a
#                            client without a certificate of the CA is refused), want or none
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

ZK_PORT="${ZK_PORT:-2181}"
ZK_JAVA_DIR="${ZK_JAVA_DIR:-/usr/share/java}"
ZK_HEAP_OPTS="${ZK_HEAP_OPTS:--Xmx256m}"
ZK_START_TIMEOUT="${ZK_START_TIMEOUT:-60}"
ZK_STOP_TIMEOUT="${ZK_STOP_TIMEOUT:-20}"
ZK_TLS="${ZK_TLS:-}"
ZK_TLS_CLIENT_AUTH="${ZK_TLS_CLIENT_AUTH:-need}"

STATE_DIR="$SVC_ROOT/zookeeper"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
CONFIG="$STATE_DIR/zoo.cfg"
PID_FILE="$STATE_DIR/zookeeper.pid"
LOG_FILE="$LOG_DIR/zookeeper.log"
TLS_DIR="$STATE_DIR/tls"
# The config path is unique per state dir; see svc_running_pid.
PID_MARKER="$CONFIG"
JAAS_FILE="$STATE_DIR/jaas.conf"
# JVM flags write_config adds (the JAAS file with ZK_AUTH=sasl).
ZK_AUTH_JVM_FLAGS=()

# Only the package's jars are used (from libzookeeper-java, which the
# zookeeper package pulls in); installing just that library avoids the full
# GUI JRE and the system service that the server package brings.
ZK_INSTALL_HINT="install with: apt-get update && apt-get install -y zookeeper (or, leaner: apt-get install -y --no-install-recommends libzookeeper-java)"

# zookeeper.jar's manifest Class-Path already lists its Debian dependencies
# (zookeeper-jute, slf4j-api, netty, ...), so only a logging binding has to
# be added. slf4j-simple (from libslf4j-java, a dependency of the package)
# logs to stderr, which is redirected to the log file; that avoids the
# log4j 1.2 setup in /etc/zookeeper/conf.
#
# The TLS port needs Netty (NettyServerCnxnFactory). The manifest lists netty-buffer, -common,
# -handler, -transport and -transport-native-epoll but not what those need in turn (their own
# manifests list nothing): netty-codec (SslHandler is a ByteToMessageDecoder), netty-resolver
# (the transport's bootstrap) and netty-transport-native-unix-common (the epoll transport). All
# are in libnetty-java, a dependency of libzookeeper-java.
zk_classpath() {
    local jar cp=""
    local -a jars=(zookeeper.jar slf4j-simple.jar)
    if tls_requested; then
        jars+=(netty-codec.jar netty-resolver.jar netty-transport-native-unix-common.jar)
    fi
    for jar in "${jars[@]}"; do
        [[ -f "$ZK_JAVA_DIR/$jar" ]] ||
            svc_die "$ZK_JAVA_DIR/$jar not found (Debian's zookeeper package is required); $ZK_INSTALL_HINT"
        cp+="${cp:+:}$ZK_JAVA_DIR/$jar"
    done
    printf '%s\n' "$cp"
}

tls_requested() {
    case "$ZK_TLS" in
    "" | 0) return 1 ;;
    1) return 0 ;;
    *) svc_die "ZK_TLS must be 1 (or unset)" ;;
    esac
}

# Whether the server of this state dir listens with TLS (its config says so), for status and
# the readiness check, which may run without ZK_TLS.
tls_configured() { grep -q '^secureClientPort=' "$CONFIG" 2>/dev/null; }

# ZK_TLS=1: the CA, the server's and a client's certificate, made once under $TLS_DIR (as
# scripts/kafka.sh does for the broker), and the server's PKCS12 keystore (its key and
# certificate) and truststore (the CA, for the client certificates; made with keytool, since
# Java takes only certificates marked trusted from a PKCS12 file, which OpenSSL 3.0 cannot do).
make_tls() {
    command -v openssl >/dev/null 2>&1 ||
        svc_die "ZK_TLS=1 needs openssl (apt-get install -y openssl)"
    local keytool
    keytool="$(dirname "$(readlink -f "$1")")/keytool"
    [[ -x "$keytool" ]] || keytool="$(command -v keytool 2>/dev/null)" ||
        svc_die "ZK_TLS=1 needs Java's keytool (openjdk-17-jre-headless)"
    mkdir -p "$TLS_DIR"
    chmod 700 "$TLS_DIR"
    local f missing=0
    for f in ca.pem server.p12 truststore.p12 client.pem client.key store.password; do
        [[ -s "$TLS_DIR/$f" ]] || missing=1
    done
    ((missing)) || return 0
    svc_log "zookeeper: making a CA, the server's and a client's certificate in $TLS_DIR"
    local out
    (
        cd "$TLS_DIR"
        umask 077
        rm -f truststore.p12
        openssl rand -hex 16 >store.password
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=sharecheck local ZooKeeper CA" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" 2>/dev/null
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth" >server.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 3650 -extfile server.cnf 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr \
            -subj "/CN=sharecheck" 2>/dev/null
        echo "extendedKeyUsage=clientAuth" >client.cnf
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out client.pem -days 3650 -extfile client.cnf 2>/dev/null
        openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem \
            -name server -out server.p12 -passout "file:store.password"
        out="$("$keytool" -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 \
            -storetype PKCS12 -storepass "$(<store.password)" 2>&1)" || {
            printf '%s\n' "$out" >&2
            exit 1
        }
        rm -f server.csr client.csr server.cnf client.cnf ca.srl
        chmod 600 ./*
    ) || svc_die "making the certificates in $TLS_DIR failed"
}

# ZK_AUTH=kerberos: the server logs in as zookeeper/127.0.0.1@REALM with the keytab of
# scripts/kdc.sh, and refuses sessions that do not authenticate by SASL GSSAPI.
write_kerberos() {
    local kdc="${ZK_KDC_DIR:-$SVC_ROOT/kdc}" realm
    [[ -f "$kdc/zookeeper.keytab" && -f "$kdc/krb5.conf" ]] \
        || svc_die "ZK_AUTH=kerberos needs the local realm: SHARECHECK_SERVICES_DIR=$SVC_ROOT scripts/kdc.sh up"
    realm="$(awk '/default_realm/ { print $3; exit }' "$kdc/krb5.conf")"
    cat >>"$CONFIG" <<EOF
# ZK_AUTH=kerberos: sessions that do not authenticate by SASL GSSAPI (Kerberos, realm
# $realm) are refused; an authenticated session's identity is sasl:<its principal>.
authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
enforce.auth.enabled=true
enforce.auth.schemes=sasl
EOF
    cat >"$JAAS_FILE" <<EOF
Server {
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    storeKey=true
    useTicketCache=false
    keyTab="$kdc/zookeeper.keytab"
    principal="zookeeper/127.0.0.1@$realm";
};
EOF
    ZK_AUTH_JVM_FLAGS=("-Djava.security.auth.login.config=$JAAS_FILE"
        "-Djava.security.krb5.conf=$kdc/krb5.conf")
}

write_config() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    case "${ZK_AUTH:-}" in
    "" | digest | sasl | kerberos) ;;
    *) svc_die "ZK_AUTH must be digest, sasl or kerberos (or unset)" ;;
    esac
    local tls=0
    if tls_requested; then
        tls=1
        case "$ZK_TLS_CLIENT_AUTH" in
        need | want | none) ;;
        *) svc_die "ZK_TLS_CLIENT_AUTH must be need, want or none" ;;
        esac
        make_tls "$1"
    fi
    # Unknown keys in zoo.cfg become zookeeper.* system properties, which is
    # how admin.enableServer and 4lw.commands.whitelist take effect.
    # The AdminServer is off because it would grab port 8080; maxClientCnxns=0
    # lifts the per-IP connection cap, since every test client comes from
    # 127.0.0.1. With TLS the file holds the keystore's password: 600.
    (
        umask 077
        cat >"$CONFIG" <<EOF
# Generated by scripts/zookeeper.sh on every 'up'; edits are overwritten.
tickTime=2000
dataDir=$DATA_DIR
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
EOF
        if ((tls)); then
            local pw
            pw="$(<"$TLS_DIR/store.password")"
            cat >>"$CONFIG" <<EOF
# ZK_TLS=1: clients connect with TLS only, to the secure client port; no plaintext port.
secureClientPort=$ZK_PORT
secureClientPortAddress=127.0.0.1
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=$TLS_DIR/server.p12
ssl.keyStore.password=$pw
ssl.keyStore.type=PKCS12
ssl.trustStore.location=$TLS_DIR/truststore.p12
ssl.trustStore.password=$pw
ssl.trustStore.type=PKCS12
# need: a client without a certificate from the CA is refused in the handshake; a session
# with one also has the identity x509:<its subject>.
ssl.clientAuth=$ZK_TLS_CLIENT_AUTH
EOF
        else
            cat >>"$CONFIG" <<EOF
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
EOF
        fi
    )
    local -a client=()
    if [[ "${ZK_AUTH:-}" == digest || "${ZK_AUTH:-}" == sasl ]]; then
        local secret="$STATE_DIR/zookeeper.secret"
        if [[ ! -s "$secret" ]]; then
            (umask 077 && printf 'sharecheck:%s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$secret")
        fi
        client+=("zookeeper_auth_file = \"$secret\"")
    fi
    rm -f "$JAAS_FILE"
    if [[ "${ZK_AUTH:-}" == digest ]]; then
        cat >>"$CONFIG" <<EOF
# ZK_AUTH=digest: sessions that do not authenticate with the digest scheme are refused.
enforce.auth.enabled=true
enforce.auth.schemes=digest
EOF
    elif [[ "${ZK_AUTH:-}" == sasl ]]; then
        cat >>"$CONFIG" <<EOF
# ZK_AUTH=sasl: sessions that do not authenticate by SASL (DIGEST-MD5 against the users
# of $JAAS_FILE) are refused; an authenticated session's identity is sasl:<user>.
authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
enforce.auth.enabled=true
enforce.auth.schemes=sasl
EOF
        local pw
        pw="$(cut -d: -f2- "$secret")"
        (
            umask 077
            cat >"$JAAS_FILE" <<EOF
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_sharecheck="$pw";
};
EOF
        )
        ZK_AUTH_JVM_FLAGS=("-Djava.security.auth.login.config=$JAAS_FILE")
        client+=('zookeeper_auth_scheme = "sasl"')
    elif [[ "${ZK_AUTH:-}" == kerberos ]]; then
        write_kerberos
        client+=('zookeeper_auth_scheme = "kerberos"')
    fi
    if ((tls)); then
        client+=("zookeeper_tls = true" "zookeeper_ca_file = \"$TLS_DIR/ca.pem\"")
        if [[ "$ZK_TLS_CLIENT_AUTH" != none ]]; then
            client+=("zookeeper_cert_file = \"$TLS_DIR/client.pem\""
                "zookeeper_key_file = \"$TLS_DIR/client.key\"")
        fi
    fi
    if ((${#client[@]} == 0)); then
        rm -f "$STATE_DIR/client.toml"
        return 0
    fi
    local modes="${ZK_AUTH:+ZK_AUTH=$ZK_AUTH}"
    ((tls)) && modes+="${modes:+ }ZK_TLS=1"
    {
        cat <<EOF
# Written by scripts/zookeeper.sh ($modes): the settings of a node of this server,
# to paste into the [balance] table of a sharecheck config, with
#   mode = "zookeeper"
#   zookeeper = "127.0.0.1:$ZK_PORT"
EOF
        printf '%s\n' "${client[@]}"
    } >"$STATE_DIR/client.toml"
}

# Sends a four-letter-word command and prints the reply (bash /dev/tcp, so
# no netcat is needed).
# With TLS through openssl s_client, with the client certificate.
zk_4lw() {
    if tls_configured; then
        printf '%s' "$1" | timeout 3 openssl s_client -quiet -verify_return_error \
            -CAfile "$TLS_DIR/ca.pem" -cert "$TLS_DIR/client.pem" -key "$TLS_DIR/client.key" \
            -connect "127.0.0.1:$ZK_PORT" 2>/dev/null
        return
    fi
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%s" "$2" >&3 && cat <&3' \
        _ "$ZK_PORT" "$1" 2>/dev/null
}

running_pid() { svc_running_pid "$PID_FILE" "$PID_MARKER"; }

is_ready() { [[ "$(zk_4lw ruok || true)" == imok ]]; }

# wait_ready STOP_ON_TIMEOUT
wait_ready() {
    local stop_on_timeout="$1" deadline=$((SECONDS + ZK_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! running_pid >/dev/null; then
            svc_tail_hint "$LOG_FILE"
            svc_die "zookeeper exited during startup (log: $LOG_FILE)"
        fi
        is_ready && return 0
        sleep 0.3
    done
    svc_tail_hint "$LOG_FILE"
    if ((stop_on_timeout)); then
        # Do not leave a half-started JVM behind.
        svc_stop zookeeper "$PID_FILE" "$PID_MARKER" "$ZK_STOP_TIMEOUT" || true
    fi
    svc_die "zookeeper did not answer ruok within ${ZK_START_TIMEOUT}s (log: $LOG_FILE)"
}

print_where() {
    local how=""
    tls_configured && how=" (TLS only; CA $TLS_DIR/ca.pem)"
    svc_log "zookeeper: running (pid $1) on 127.0.0.1:$ZK_PORT$how"
    svc_log "zookeeper: log: $LOG_FILE, data: $DATA_DIR"
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    local pid
    if pid="$(running_pid)"; then
        # Not started by this call, so a timeout leaves it alone.
        if tls_requested && ! tls_configured; then
            svc_die "zookeeper: running (pid $pid) without TLS; stop it first (down) to start it with ZK_TLS=1"
        fi
        wait_ready 0
        print_where "$pid"
        return 0
    fi
    rm -f "$PID_FILE"
    local cp java
    cp="$(zk_classpath)"
    java="$(svc_java 11)"
    # Installing the package starts a system ZooKeeper on 2181 where systemd
    # runs, hence the hint.
    svc_fail_if_port_taken "$ZK_PORT" ZooKeeper ZK_PORT \
        "If it is the packaged service: systemctl stop zookeeper && systemctl disable zookeeper"
    write_config "$java"
    svc_rotate_log "$LOG_FILE"
    local -a heap
    read -r -a heap <<<"$ZK_HEAP_OPTS"
    local start=$SECONDS
    svc_log "zookeeper: starting on 127.0.0.1:$ZK_PORT${ZK_TLS:+ (TLS)}"
    svc_spawn "$PID_FILE" "$LOG_FILE" "$java" "${heap[@]}" "${ZK_AUTH_JVM_FLAGS[@]}" \
        -Djava.awt.headless=true \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS" \
        -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$CONFIG"
    pid="$(<"$PID_FILE")"
    wait_ready 1
    svc_log "zookeeper: ready after $((SECONDS - start))s"
    print_where "$pid"
}

cmd_down() {
    local purge
    purge="$(svc_purge_flag "$@")"
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    svc_stop zookeeper "$PID_FILE" "$PID_MARKER" "$ZK_STOP_TIMEOUT"
    if ((purge)); then
        rm -rf "$DATA_DIR"
        svc_log "zookeeper: deleted data dir $DATA_DIR"
    fi
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if is_ready; then
            print_where "$pid"
            return 0
        fi
        svc_log "zookeeper: pid $pid is running but does not answer ruok on 127.0.0.1:$ZK_PORT; log: $LOG_FILE"
        return 1
    fi
    svc_log "zookeeper: not running (state: $STATE_DIR)"
    # LSB convention: 3 = program is not running.
    return 3
}

case "${1:-}" in
up) cmd_up ;;
down) shift && cmd_down "$@" ;;
reset) cmd_down --purge ;;
status) cmd_status ;;
logs) shift && svc_show_log "$LOG_FILE" "$@" ;;
*) svc_usage "$0" ;;
esac
