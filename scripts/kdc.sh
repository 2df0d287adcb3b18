#!/usr/bin/env bash
# Local MIT Kerberos KDC with a realm of its own, for Kafka's SASL GSSAPI (Kerberos) on a
# local broker (KAFKA_KERBEROS=1 scripts/kafka.sh up), ZooKeeper's SASL with Kerberos
# (ZK_AUTH=kerberos scripts/zookeeper.sh up), and their tests.
#
#   kdc.sh up                 make the realm and keytabs (once), start krb5kdc, wait until
#                             it answers
#   kdc.sh down [--purge]     stop; --purge also deletes the realm and keytabs
#   kdc.sh status             exit 0 when running, 3 when not
#   kdc.sh logs               show the KDC's log
#
# Environment:
#   SHARECHECK_SERVICES_DIR  state root (default ~/.cache/sharecheck); the KDC's is $ROOT/kdc
#   KDC_PORT                 the KDC's port, TCP and UDP (default 18088)
#   KDC_REALM                the realm (default SHARECHECK.TEST)
#
# It writes, under $ROOT/kdc (chmod 700):
#   krb5.conf           the realm's client configuration: point KRB5_CONFIG at it (Java:
#                       -Djava.security.krb5.conf)
#   kafka.keytab        the broker's service principal kafka/127.0.0.1@REALM
#   zookeeper.keytab    ZooKeeper's, zookeeper/127.0.0.1@REALM
#   sharecheck.keytab   a client principal sharecheck@REALM
# Needs Debian's krb5-kdc, krb5-admin-server (kadmin.local) and krb5-user (kinit).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

KDC_PORT="${KDC_PORT:-18088}"
KDC_REALM="${KDC_REALM:-SHARECHECK.TEST}"
STATE_DIR="$SVC_ROOT/kdc"
PID_FILE="$STATE_DIR/krb5kdc.pid"
OUT_LOG="$STATE_DIR/krb5kdc.out"
KDC_LOG="$STATE_DIR/kdc.log"
# The KDC's own profile names this directory's database, so it marks "our" krb5kdc.
KDC_PROFILE="$STATE_DIR/kdc.conf"
PID_MARKER="krb5kdc"
export KRB5_CONFIG="$STATE_DIR/krb5.conf" KRB5_KDC_PROFILE="$KDC_PROFILE"

# The tools live in /usr/sbin, which a non-root PATH often lacks.
sbin() {
    local t
    t="$(command -v "$1" 2>/dev/null || true)"
    [[ -n "$t" ]] || t="/usr/sbin/$1"
    [[ -x "$t" ]] || svc_die "$1 not found; install with: apt-get install -y krb5-kdc krb5-admin-server krb5-user"
    printf '%s\n' "$t"
}

write_configs() {
    # TCP only (udp_preference_limit = 1): Java's Kerberos and MIT's agree on it, and a
    # ticket never gets truncated. AES with SHA-1 HMACs: what every JDK 17 and MIT 1.20
    # share. No DNS: the broker's principal names the address it is reached at.
    cat >"$KRB5_CONFIG" <<EOF
# Written by scripts/kdc.sh: the client side of the local realm $KDC_REALM.
[libdefaults]
    default_realm = $KDC_REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
    default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
    permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
[realms]
    $KDC_REALM = {
        kdc = 127.0.0.1:$KDC_PORT
    }
[domain_realm]
    127.0.0.1 = $KDC_REALM
    localhost = $KDC_REALM
EOF
    cat >"$KDC_PROFILE" <<EOF
# Written by scripts/kdc.sh: the KDC of the local realm $KDC_REALM.
[kdcdefaults]
    kdc_ports = $KDC_PORT
    kdc_tcp_ports = $KDC_PORT
[realms]
    $KDC_REALM = {
        database_name = $STATE_DIR/principal
        key_stash_file = $STATE_DIR/stash
        acl_file = $STATE_DIR/kadm5.acl
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 1d
        max_renewable_life = 7d
    }
[logging]
    kdc = FILE:$KDC_LOG
EOF
    : >"$STATE_DIR/kadm5.acl"
}

# The realm's database, the principals and their keytabs, once.
make_realm() {
    [[ -f "$STATE_DIR/sharecheck.keytab" ]] && return 0
    svc_log "kdc: making the realm $KDC_REALM in $STATE_DIR"
    rm -f "$STATE_DIR"/principal* "$STATE_DIR/stash" "$STATE_DIR"/*.keytab
    local kadmin
    kadmin="$(sbin kadmin.local)"
    (
        umask 077
        "$(sbin kdb5_util)" -r "$KDC_REALM" create -s -P "$(openssl rand -hex 16)" >/dev/null
        local name principal
        for name in kafka zookeeper sharecheck; do
            principal="$name"
            [[ "$name" == sharecheck ]] || principal="$name/127.0.0.1"
            "$kadmin" -r "$KDC_REALM" -q "addprinc -randkey $principal" >/dev/null
            "$kadmin" -r "$KDC_REALM" -q "ktadd -k $STATE_DIR/$name.keytab $principal" >/dev/null
        done
    ) 2>"$STATE_DIR/make-realm.err" || {
        svc_tail_hint "$STATE_DIR/make-realm.err"
        svc_die "making the realm failed"
    }
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    if svc_running_pid "$PID_FILE" "$PID_MARKER" >/dev/null; then
        svc_log "kdc: running (realm $KDC_REALM on 127.0.0.1:$KDC_PORT)"
        return 0
    fi
    svc_fail_if_port_taken "$KDC_PORT" "Kerberos KDC" KDC_PORT
    write_configs
    make_realm
    : >"$OUT_LOG"
    svc_spawn "$PID_FILE" "$OUT_LOG" "$(sbin krb5kdc)" -n -r "$KDC_REALM"
    local i
    for ((i = 0; i < 100; i++)); do
        if svc_port_open "$KDC_PORT"; then
            # A ticket from the keytab, in a cache of its own: the realm answers.
            if KRB5CCNAME="FILE:$STATE_DIR/check.ccache" kinit -k -t "$STATE_DIR/sharecheck.keytab" \
                "sharecheck@$KDC_REALM" 2>"$STATE_DIR/kinit.err"; then
                rm -f "$STATE_DIR/check.ccache"
                svc_log "kdc: realm $KDC_REALM on 127.0.0.1:$KDC_PORT; KRB5_CONFIG=$KRB5_CONFIG"
                return 0
            fi
        fi
        svc_running_pid "$PID_FILE" "$PID_MARKER" >/dev/null || break
        sleep 0.1
    done
    svc_tail_hint "$OUT_LOG"
    svc_tail_hint "$STATE_DIR/kinit.err"
    svc_die "the KDC did not answer on 127.0.0.1:$KDC_PORT (log: $KDC_LOG)"
}

cmd_down() {
    local purge
    purge="$(svc_purge_flag "$@")"
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    svc_stop kdc "$PID_FILE" "$PID_MARKER" 10
    if ((purge)); then
        rm -rf "$STATE_DIR"
        svc_log "kdc: deleted $STATE_DIR"
    fi
}

cmd_status() {
    if svc_running_pid "$PID_FILE" "$PID_MARKER" >/dev/null; then
        svc_log "kdc: running (realm $KDC_REALM on 127.0.0.1:$KDC_PORT)"
        return 0
    fi
    svc_log "kdc: not running (state: $STATE_DIR)"
    return 3
}

case "${1:-}" in
up) cmd_up ;;
down) shift && cmd_down "$@" ;;
status) cmd_status ;;
logs) svc_show_log "$KDC_LOG" ;;
*) svc_usage "$0" ;;
esac
