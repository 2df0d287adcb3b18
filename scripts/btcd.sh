#!/usr/bin/env bash
# Local btcd node on regtest for development and tests: the Bitcoin node that the job maker
# asks for block templates and the block submitter sends blocks to. btcd speaks Bitcoin
# Core's JSON-RPC (getblocktemplate, submitblock, sendrawtransaction, ...); the differences
# that matter are in docs/operations.md, "Bitcoin node RPC".
#
#   btcd.sh up                 start (no-op if already running), wait until RPC answers
#   btcd.sh down [--purge]     stop; --purge also deletes the data dir
#   btcd.sh reset              stop and delete the data dir
#   btcd.sh status             exit 0 when running and answering, 3 when not
#   btcd.sh logs [-f]          show (or follow) the node's log
#   btcd.sh install            build btcd and btcctl when missing (go install, needs Go)
#   btcd.sh cli ARGS           run btcctl against this node, e.g. btcd.sh cli generate 101
#
# Environment:
#   SHARECHECK_SERVICES_DIR  state root (default ~/.cache/sharecheck); the node's data under
#                            $SHARECHECK_SERVICES_DIR/btcd
#   BTCD_RPC_PORT            JSON-RPC port on 127.0.0.1 (default 18334), plain HTTP
#   BTCD_P2P_PORT            peer-to-peer port on 127.0.0.1 (default 18444)
#   BTCD_RPC_USER            RPC user (default sharecheck)
#   BTCD_RPC_PASS            RPC password (default sharecheck)
#   BTCD_MINING_ADDR         address that `generate` and templates pay (default: the P2PKH
#                            regtest address of the tests' fixed key, tests/btcd_support)
#   BTCD_VERSION             release built by install (default v0.24.2)
#   BTCD_DIST_ROOT           where install puts the binaries (default
#                            $SHARECHECK_SERVICES_DIR/btcd-dist); point a second node's
#                            services dir at the first one's to skip the build
#   BTCD_START_TIMEOUT       seconds to wait for RPC (default 60)
#   BTCD_STOP_TIMEOUT        seconds before SIGKILL on down (default 30)
#
# btcd deletes its regtest chain at every start: a node that is stopped and started again
# is back at height 0 (the genesis block), with a new chain.
#
# Two nodes at once: give each its own SHARECHECK_SERVICES_DIR (data, logs, config, pid
# file, lock) and its own BTCD_RPC_PORT and BTCD_P2P_PORT.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

BTCD_VERSION="${BTCD_VERSION:-v0.24.2}"
BTCD_RPC_PORT="${BTCD_RPC_PORT:-18334}"
BTCD_P2P_PORT="${BTCD_P2P_PORT:-18444}"
BTCD_RPC_USER="${BTCD_RPC_USER:-sharecheck}"
BTCD_RPC_PASS="${BTCD_RPC_PASS:-sharecheck}"
# P2PKH of the secret key SHA-256("sharecheck regtest test key"); tests/btcd_rpc.rs checks
# that this default and the tests' wallet agree.
BTCD_MINING_ADDR="${BTCD_MINING_ADDR:-mrpzkFWSnJuT1YNpTY3dNZPiutipTAd8pg}"
BTCD_START_TIMEOUT="${BTCD_START_TIMEOUT:-60}"
BTCD_STOP_TIMEOUT="${BTCD_STOP_TIMEOUT:-30}"

STATE_DIR="$SVC_ROOT/btcd"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
CONFIG="$STATE_DIR/btcd.conf"
CTL_CONFIG="$STATE_DIR/btcctl.conf"
PID_FILE="$STATE_DIR/btcd.pid"
OUT_LOG="$LOG_DIR/btcd.out"
# btcd writes its own log under <logdir>/<network>/.
NODE_LOG="$LOG_DIR/regtest/btcd.log"
DIST_DIR="${BTCD_DIST_ROOT:-$SVC_ROOT/btcd-dist}/$BTCD_VERSION"
BIN_DIR="$DIST_DIR/bin"
RPC_ADDR="127.0.0.1:$BTCD_RPC_PORT"
# The config path is unique per state dir; see svc_running_pid.
PID_MARKER="$CONFIG"

GO_HINT="install Go 1.17 or newer, e.g. apt-get update && apt-get install -y golang-go"

# --- binaries ---------------------------------------------------------------

have_binaries() { [[ -x "$BIN_DIR/btcd" && -x "$BIN_DIR/btcctl" ]]; }

# Builds btcd and btcctl with `go install` into $BIN_DIR. Concurrent callers (parallel test
# processes, each with its own state dir) share the dist dir, so the build runs under a lock
# of its own (fd 8; fd 9 is svc_lock's) and lands in a temporary directory first: a half
# built bin/ never looks complete.
cmd_install() {
    have_binaries && return 0
    mkdir -p "$DIST_DIR"
    (
        if command -v flock >/dev/null 2>&1; then
            flock -w 600 8 || svc_die "timed out waiting for lock $DIST_DIR/.lock"
        fi
        have_binaries && exit 0
        command -v go >/dev/null 2>&1 ||
            svc_die "go not found (needed once to build btcd $BTCD_VERSION); $GO_HINT"
        svc_log "btcd: building btcd and btcctl $BTCD_VERSION with go install into $BIN_DIR (first run only)"
        rm -rf "$BIN_DIR.tmp"
        mkdir -p "$BIN_DIR.tmp"
        if ! GOBIN="$BIN_DIR.tmp" go install \
            "github.com/btcsuite/btcd@$BTCD_VERSION" \
            "github.com/btcsuite/btcd/cmd/btcctl@$BTCD_VERSION" >"$DIST_DIR/go-install.log" 2>&1; then
            svc_tail_hint "$DIST_DIR/go-install.log"
            svc_die "go install of btcd $BTCD_VERSION failed (full log: $DIST_DIR/go-install.log)"
        fi
        rm -rf "$BIN_DIR"
        mv "$BIN_DIR.tmp" "$BIN_DIR"
        svc_log "btcd: installed $("$BIN_DIR/btcd" --version 2>&1 | head -n 1)"
    ) 8>"$DIST_DIR/.lock" || exit 1
}

# --- config -----------------------------------------------------------------

# Everything is in a config file of this state dir, passed with --configfile, so that a
# ~/.btcd/btcd.conf (or ~/.btcctl/btcctl.conf) of the user's is never read, and the
# password stays off the command line. Rewritten on every 'up'.
write_configs() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    (
        umask 077
        cat >"$CONFIG" <<EOF
; Generated by scripts/btcd.sh on every 'up'; edits are overwritten.
[Application Options]
regtest=1
datadir=$DATA_DIR
logdir=$LOG_DIR
rpcuser=$BTCD_RPC_USER
rpcpass=$BTCD_RPC_PASS
rpclisten=$RPC_ADDR
; Plain HTTP, as Bitcoin Core serves RPC; btcd allows it on loopback only.
notls=1
listen=127.0.0.1:$BTCD_P2P_PORT
miningaddr=$BTCD_MINING_ADDR
EOF
        cat >"$CTL_CONFIG" <<EOF
; Generated by scripts/btcd.sh on every 'up'.
[Application Options]
regtest=1
rpcserver=$RPC_ADDR
rpcuser=$BTCD_RPC_USER
rpcpass=$BTCD_RPC_PASS
notls=1
EOF
    )
}

btcctl() { "$BIN_DIR/btcctl" --configfile="$CTL_CONFIG" "$@"; }

# --- commands ---------------------------------------------------------------

running_pid() { svc_running_pid "$PID_FILE" "$PID_MARKER"; }

# Ready = the RPC server answers getblockcount with these credentials (btcd opens the RPC
# port only once the chain is loaded).
is_ready() {
    [[ -f "$CTL_CONFIG" ]] && have_binaries &&
        timeout 10 "$BIN_DIR/btcctl" --configfile="$CTL_CONFIG" getblockcount >/dev/null 2>&1
}

# wait_ready STOP_ON_TIMEOUT
wait_ready() {
    local stop_on_timeout="$1" deadline=$((SECONDS + BTCD_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! running_pid >/dev/null; then
            svc_tail_hint "$OUT_LOG" "$NODE_LOG"
            svc_die "btcd exited during startup (logs: $LOG_DIR)"
        fi
        is_ready && return 0
        sleep 0.2
    done
    svc_tail_hint "$OUT_LOG" "$NODE_LOG"
    if ((stop_on_timeout)); then
        svc_stop btcd "$PID_FILE" "$PID_MARKER" "$BTCD_STOP_TIMEOUT" || true
    fi
    svc_die "btcd did not answer RPC on $RPC_ADDR within ${BTCD_START_TIMEOUT}s (logs: $LOG_DIR)"
}

print_where() {
    svc_log "btcd: running (pid $1) on regtest, RPC http://$RPC_ADDR/ (user $BTCD_RPC_USER), P2P 127.0.0.1:$BTCD_P2P_PORT"
    svc_log "btcd: log: $NODE_LOG (stdout/stderr: $OUT_LOG), data: $DATA_DIR"
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    local pid
    if pid="$(running_pid)"; then
        # Not started by this call, so a timeout leaves it alone.
        wait_ready 0
        print_where "$pid"
        return 0
    fi
    rm -f "$PID_FILE"
    svc_fail_if_port_taken "$BTCD_RPC_PORT" "btcd RPC" BTCD_RPC_PORT
    svc_fail_if_port_taken "$BTCD_P2P_PORT" "btcd P2P" BTCD_P2P_PORT
    cmd_install
    write_configs
    svc_rotate_log "$OUT_LOG"
    local start=$SECONDS
    svc_log "btcd: starting btcd $BTCD_VERSION (regtest) on $RPC_ADDR"
    svc_spawn "$PID_FILE" "$OUT_LOG" "$BIN_DIR/btcd" --configfile="$CONFIG"
    pid="$(<"$PID_FILE")"
    wait_ready 1
    svc_log "btcd: ready after $((SECONDS - start))s"
    print_where "$pid"
}

cmd_down() {
    local purge
    purge="$(svc_purge_flag "$@")"
    mkdir -p "$STATE_DIR"
    svc_lock "$STATE_DIR/.lock"
    svc_stop btcd "$PID_FILE" "$PID_MARKER" "$BTCD_STOP_TIMEOUT"
    if ((purge)); then
        rm -rf "$DATA_DIR"
        svc_log "btcd: deleted data dir $DATA_DIR"
    fi
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if is_ready; then
            print_where "$pid"
            return 0
        fi
        svc_log "btcd: pid $pid is running but does not answer RPC on $RPC_ADDR; log: $NODE_LOG"
        return 1
    fi
    svc_log "btcd: not running (state: $STATE_DIR)"
    # LSB convention: 3 = program is not running.
    return 3
}

cmd_cli() {
    have_binaries || svc_die "btcctl is not installed; run: $0 install"
    [[ -f "$CTL_CONFIG" ]] || svc_die "no node configured in $STATE_DIR; start one with: $0 up"
    btcctl "$@"
}

case "${1:-}" in
up) cmd_up ;;
down) shift && cmd_down "$@" ;;
reset) cmd_down --purge ;;
status) cmd_status ;;
logs) shift && svc_show_log "$NODE_LOG" "$@" ;;
install) cmd_install ;;
cli) shift && cmd_cli "$@" ;;
*) svc_usage "$0" ;;
esac
