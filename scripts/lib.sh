# shellcheck shell=bash
# Shared helpers for the local service scripts (kafka.sh, zookeeper.sh).
# Sourced, not executed. Everything a service writes lives under
# SVC_ROOT so a single `rm -rf` (or a different SHARECHECK_SERVICES_DIR per
# checkout / CI job) gives a clean slate.

# shellcheck disable=SC2034 # used by the scripts that source this file
SVC_ROOT="${SHARECHECK_SERVICES_DIR:-${HOME:?HOME is not set}/.cache/sharecheck}"

# Hint printed whenever a prerequisite is missing; kept in one place so all
# scripts give the same advice on a fresh Debian machine.
SVC_APT_HINT="install with: apt-get update && apt-get install -y openjdk-17-jre-headless maven"

svc_log() { printf '%s\n' "$*" >&2; }

svc_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Prints the java binary to use (JAVA_HOME wins, as with the upstream
# launchers) after checking it is at least the given major version.
svc_java() {
    local min="${1:-17}" java ver major
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        java="$JAVA_HOME/bin/java"
    elif java="$(command -v java 2>/dev/null)"; then
        :
    else
        svc_die "java not found (Java $min+ required); $SVC_APT_HINT"
    fi
    # `java -version` prints e.g. openjdk version "17.0.15" or "1.8.0_392".
    ver="$("$java" -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')"
    major="${ver%%[.+-]*}"
    if [[ "$major" == 1 ]]; then
        major="${ver#1.}"
        major="${major%%.*}"
    fi
    if ! [[ "$major" =~ ^[0-9]+$ ]] || ((major < min)); then
        svc_die "$java is version '${ver:-unknown}', Java $min+ required; $SVC_APT_HINT"
    fi
    printf '%s\n' "$java"
}

# True when something accepts TCP connections on 127.0.0.1:<port>.
# Uses bash's /dev/tcp so no netcat/kcat is needed; `timeout` guards against
# a filtered port hanging the connect.
svc_port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Best-effort description of who listens on a port, for error messages.
svc_port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | awk '{ print $NF }' | head -n 3
    fi
}

# Fails with a clear message when <port> is taken by something this script
# did not start; <hint> is an optional extra sentence.
svc_fail_if_port_taken() {
    local port="$1" what="$2" env_var="$3" hint="${4:-}" owner
    if svc_port_open "$port"; then
        owner="$(svc_port_owner "$port")"
        svc_die "port 127.0.0.1:$port ($what) is already in use by another process${owner:+ ($owner)}," \
            "not one started by this script; stop it or choose another port with $env_var=<port>${hint:+. $hint}"
    fi
}

# Prints the pid from <pidfile> if that process is alive and its command
# line contains <marker>. The marker check protects against acting on an
# unrelated process that reused the pid after a reboot or crash; zombies
# count as dead (in containers whose init does not reap, a killed JVM can
# linger as a zombie and would otherwise look alive forever).
svc_running_pid() {
    local pidfile="$1" marker="$2" pid state cmdline
    [[ -r "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/stat" ]]; then
        state="$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)"
        [[ "$state" != Z ]] || return 1
        cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    else
        cmdline="$(ps -p "$pid" -o args= 2>/dev/null)"
    fi
    [[ "$cmdline" == *"$marker"* ]] || return 1
    printf '%s\n' "$pid"
}

# Starts a command detached from the caller (own session, stdin closed,
# output to <outfile>, the svc_lock fd closed so the long-running child does
# not hold the lock forever) and writes its pid to <pidfile>. The pid is written
# by the child itself right before exec, so it is the JVM's pid even when
# setsid has to fork.
svc_spawn() {
    local pidfile="$1" outfile="$2"
    shift 2
    rm -f "$pidfile"
    local -a detach=()
    if command -v setsid >/dev/null 2>&1; then
        detach=(setsid)
    fi
    # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash
    nohup "${detach[@]}" bash -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
        "$pidfile" "$@" >>"$outfile" 2>&1 </dev/null 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    svc_die "process did not start (no pid file $pidfile); see $outfile"
}

# Stops the process recorded in <pidfile>: SIGTERM, wait up to <timeout>
# seconds for a clean shutdown, then SIGKILL. No-op when not running.
svc_stop() {
    local name="$1" pidfile="$2" marker="$3" timeout="${4:-30}" pid i
    if ! pid="$(svc_running_pid "$pidfile" "$marker")"; then
        rm -f "$pidfile"
        svc_log "$name: not running"
        return 0
    fi
    svc_log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        svc_running_pid "$pidfile" "$marker" >/dev/null || break
        sleep 0.1
    done
    if svc_running_pid "$pidfile" "$marker" >/dev/null; then
        svc_log "$name: still running after ${timeout}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            svc_running_pid "$pidfile" "$marker" >/dev/null || break
            sleep 0.1
        done
        if svc_running_pid "$pidfile" "$marker" >/dev/null; then
            svc_die "$name: pid $pid survived SIGKILL"
        fi
    fi
    rm -f "$pidfile"
    svc_log "$name: stopped"
}

# Serialises up/down of one service so two concurrent callers (e.g. parallel
# test jobs) cannot start two JVMs on the same data dir. The lock is held
# until the calling script exits. fd 9 is reserved for it (see svc_spawn).
svc_lock() {
    local lockfile="$1"
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>"$lockfile"
    flock -w 300 9 || svc_die "timed out waiting for lock $lockfile"
}

# Keeps the previous run's log next to the new one instead of appending, so
# readiness checks only ever see lines from the current start.
svc_rotate_log() {
    local f
    for f in "$@"; do
        if [[ -e "$f" ]]; then
            mv -f "$f" "$f.prev"
        fi
    done
}

svc_tail_hint() {
    local f
    for f in "$@"; do
        if [[ -s "$f" ]]; then
            svc_log "---- last lines of $f ----"
            tail -n 25 "$f" >&2
        fi
    done
}

# `logs [-f]` of a service script: the last LOG_LINES (default 200) lines of <file>, or with
# -f, follow it.
svc_show_log() {
    local file="$1"
    [[ -f "$file" ]] || svc_die "no log yet at $file"
    if [[ "${2:-}" == -f ]]; then
        exec tail -n 100 -F "$file"
    fi
    tail -n "${LOG_LINES:-200}" "$file"
}

# The options of `down`: prints 1 for --purge, else 0; anything else is an error.
svc_purge_flag() {
    local purge=0 arg
    for arg in "$@"; do
        case "$arg" in
        --purge) purge=1 ;;
        *) svc_die "unknown option for down: $arg" ;;
        esac
    done
    printf '%s\n' "$purge"
}

# Prints the header comment of <script> (its usage) and exits 2.
svc_usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$1" >&2
    exit 2
}

# For the demos: exits listing every prerequisite missing before anything is built or
# started (the first build takes minutes). Arguments name the extras: `build` (cargo, a C
# compiler, pkg-config and OpenSSL's headers), `zookeeper` (ZooKeeper's jars); Java and
# Maven (or KAFKA_HOME) are always needed.
svc_need() {
    local who="$1" missing=() what
    shift
    for what in "$@"; do
        case "$what" in
        build)
            command -v cargo >/dev/null 2>&1 || missing+=("Rust's cargo (https://rustup.rs)")
            command -v cc >/dev/null 2>&1 || missing+=("a C compiler (Debian: build-essential)")
            pkg-config --exists openssl 2>/dev/null ||
                missing+=("pkg-config and OpenSSL's headers (Debian: pkg-config libssl-dev)")
            ;;
        zookeeper)
            [[ -f "${ZK_JAVA_DIR:-/usr/share/java}/zookeeper.jar" ]] ||
                missing+=("ZooKeeper's jars (Debian: libzookeeper-java libslf4j-java)")
            ;;
        esac
    done
    command -v java >/dev/null 2>&1 || missing+=("Java 17+ (Debian: openjdk-17-jre-headless)")
    [[ -n "${KAFKA_HOME:-}" ]] || command -v mvn >/dev/null 2>&1 ||
        missing+=("Maven, to fetch Kafka (Debian: maven), or KAFKA_HOME")
    if ((${#missing[@]})); then
        echo "$who needs:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        exit 1
    fi
}
