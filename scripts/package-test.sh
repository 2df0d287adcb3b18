#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, [package.metadata.deb] in Cargo.toml), installs it
# on this machine and checks what was installed, for real: the unit files with
# `systemd-analyze verify` and `systemd-analyze security`, the installed binary's version,
# shared libraries against the package's Depends, Kerberos built in, a generated workload validated by
# /usr/bin/sharecheck with every verdict as expected, /etc/sharecheck/node.toml accepted, and
# the unit's own ExecStart line run against a port where no broker listens (alone it must
# fail by itself with a message naming the brokers; sent SIGTERM it must be gone within the
# unit's TimeoutStopSec), `systemctl enable sharecheck@node`. Then removes and purges the
# package, leaving the machine as it was. One line per check; exits non-zero if any failed.
#
# Runs as root (or with sudo) on Debian 12; installs what it needs that is missing (apt-get:
# the C toolchain and libssl-dev for librdkafka, dpkg-dev for cargo-deb's dependency
# scan, systemd for systemd-analyze; cargo install: cargo-deb). Needs Rust (cargo). Never
# talks to a Kafka broker. Extra arguments go to `cargo deb` (e.g. --fast).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
failed=0
pass() { echo "PASS $*"; }
fail() {
    echo "FAIL $*"
    failed=$((failed + 1))
}
die() {
    echo "FAIL $*"
    exit 1
}

# --- what the build and the checks need
# libsasl2-dev, libkrb5-dev and libclang-dev: the package's Kerberos (the gssapi feature).
pkgs="build-essential pkg-config libssl-dev zlib1g-dev dpkg-dev systemd"
pkgs="$pkgs libsasl2-dev libkrb5-dev libclang-dev"
missing=""
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi
command -v cargo >/dev/null 2>&1 || die "cargo: not found (install Rust, e.g. rustup)"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb"
    cargo install cargo-deb --locked
fi

# A sharecheck package already on this machine would make the checks meaningless.
if dpkg -s sharecheck >/dev/null 2>&1 || [ -e /etc/sharecheck ]; then
    die "sharecheck is installed already (or /etc/sharecheck exists): dpkg -P sharecheck first"
fi

work=$(mktemp -d)
installed=0
node_pid=""
cleanup() {
    [ -n "$node_pid" ] && kill -KILL "$node_pid" 2>/dev/null
    if [ "$installed" = 1 ]; then
        $sudo dpkg -P sharecheck >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- build
build_start=$(date +%s)
if ! cargo deb --locked "$@" >"$work/deb.out" 2>"$work/deb.err"; then
    tail -30 "$work/deb.err"
    die "build: cargo deb --locked failed"
fi
deb=$(grep '\.deb$' "$work/deb.out" | tail -1)
[ -f "$deb" ] || die "build: no .deb in cargo deb's output: $(cat "$work/deb.out")"
pass "build: $deb ($(du -h "$deb" | cut -f1), cargo deb $(($(date +%s) - build_start)) s)"

# --- the package's contents and control fields
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$work/contents"
want="/usr/bin/sharecheck /etc/sharecheck/node.toml /lib/systemd/system/sharecheck@.service
/lib/systemd/system/sharecheck-stratum@.service /usr/share/doc/sharecheck/README.md
/usr/share/doc/sharecheck/docs/operations.md /usr/share/doc/sharecheck/config/sharecheck.toml"
absent=""
for f in $want; do grep -qx "$f" "$work/contents" || absent="$absent $f"; done
if [ -z "$absent" ]; then
    pass "contents: binary, conffile, both units and the docs where they belong"
else
    fail "contents: missing$absent"
fi
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles 2>/dev/null || true)
if [ "$conffiles" = "/etc/sharecheck/node.toml" ]; then
    pass "conffiles: /etc/sharecheck/node.toml"
else
    fail "conffiles: expected /etc/sharecheck/node.toml, got: ${conffiles:-none}"
fi
depends=$(dpkg-deb -f "$deb" Depends)

# --- install
if ! $sudo dpkg -i "$deb" >"$work/dpkg.out" 2>&1; then
    installed=1
    cat "$work/dpkg.out"
    die "install: dpkg -i failed"
fi
installed=1
pass "install: dpkg -i, Depends: $depends"

# --- the units as installed
for unit in sharecheck@.service sharecheck-stratum@.service; do
    path=/lib/systemd/system/$unit
    if out=$(systemd-analyze verify "$path" 2>&1) && [ -z "$out" ]; then
        pass "systemd-analyze verify $path: no warnings"
    else
        fail "systemd-analyze verify $path: $out"
    fi
    # An instance's exposure (0 best, 10 worst); the threshold is in tenths.
    if sec=$(systemd-analyze security --offline=true --threshold=20 "$path" 2>&1); then
        pass "systemd-analyze security $unit: $(echo "$sec" | grep -o 'exposure level.*' | sed 's/ [^ ]*$//')"
    else
        fail "systemd-analyze security $unit: above 2.0: $(echo "$sec" | tail -1)"
    fi
done

# --- the installed binary
bin=/usr/bin/sharecheck
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
if v=$($bin --version 2>&1) && [ "$v" = "sharecheck $version" ]; then
    pass "version: $bin --version = $v"
else
    fail "version: $bin --version = ${v:-nothing}, expected sharecheck $version"
fi

# Every shared library it needs resolves and comes from a package of Depends, or one they
# depend on, however deep (libgcc-s1 through libc6, libkeyutils1 through libgssapi-krb5-2
# and libkrb5-3). libOpenCL and libvulkan are not linked: the GPU backends load them at run
# time.
names() { tr ',|' '\n\n' | sed 's/(.*//; s/:.*//; s/ //g' | { grep -v '^$' || true; }; }
direct=$(echo "$depends" | names)
allowed=" $(echo $direct) "
frontier="$direct"
while [ -n "$frontier" ]; do
    next=""
    for d in $frontier; do
        for x in $(dpkg-query -W -f '${Pre-Depends},${Depends}' "$d" 2>/dev/null | names); do
            case "$allowed" in
            *" $x "*) ;;
            *) allowed="$allowed$x " && next="$next $x" ;;
            esac
        done
    done
    frontier="$next"
done
unresolved=$(ldd $bin | grep 'not found' || true)
owners=""
bad=""
while read -r name path; do
    [ -n "$name" ] || continue
    owner=""
    for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
        owner=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    owners="$owners $name($owner)"
    [ -n "$owner" ] && echo " $allowed " | tr '\n' ' ' | grep -q " $owner " || bad="$bad $name(${owner:-no package})"
done < <(ldd $bin | awk '$2 == "=>" {print $1 " " $3}')
if [ -z "$unresolved" ] && [ -z "$bad" ]; then
    pass "libraries: all resolved, each from Depends or theirs:$owners"
else
    fail "libraries: not found: ${unresolved:-none}; from packages outside Depends: ${bad:-none}"
fi

# A real validation: a generated workload (stratum and header shares, every reject kind),
# each share's verdict compared with the status it was made to get, in input order.
shares=20000
$bin gen --shares $shares --seed 11 --mode mixed >"$work/shares.jsonl" 2>"$work/gen.err"
verify_start=$(date +%s%N)
$bin verify "$work/shares.jsonl" >"$work/verdicts.jsonl" 2>"$work/verify.err" || true
verify_ms=$((($(date +%s%N) - verify_start) / 1000000))
grep -o '"expect":"[a-z_]*"' "$work/shares.jsonl" | cut -d'"' -f4 >"$work/expected"
grep -o '"status":"[a-z_]*"' "$work/verdicts.jsonl" | cut -d'"' -f4 >"$work/got"
n=$(wc -l <"$work/got")
differ=$(paste -d' ' "$work/expected" "$work/got" | awk '$1 != $2' | wc -l)
summary=$(grep 'shares:' "$work/verify.err" | sed 's/^sharecheck: //' || true)
if [ "$n" = "$shares" ] && [ "$(wc -l <"$work/expected")" = "$shares" ] && [ "$differ" = 0 ]; then
    pass "verify: $n verdicts, all as generated, $verify_ms ms ($summary)"
else
    fail "verify: $n verdicts of $shares, $differ not as generated ($(cat "$work/verify.err"))"
fi

# The shipped configuration: accepted by the binary (every key checked at load), and the
# same verdicts with it.
conf=/etc/sharecheck/node.toml
if [ -f $conf ] && [ "$(stat -c %a $conf)" = 644 ] &&
    $bin --config $conf verify "$work/shares.jsonl" >"$work/verdicts2.jsonl" 2>"$work/verify2.err" &&
    cmp -s "$work/verdicts.jsonl" "$work/verdicts2.jsonl"; then
    pass "config: $conf (0644) accepted, the same $shares verdicts with it"
else
    fail "config: $conf: $(ls -l $conf 2>&1); $(tail -3 "$work/verify2.err" 2>/dev/null)"
fi
# ...and a key it does not know is refused at once, naming it (so the run below, still
# going after seconds, had its configuration accepted).
sed 's/^listen = /listen_typo = /' $conf >"$work/typo.toml"
if ! out=$($bin --config "$work/typo.toml" verify /dev/null 2>&1) && echo "$out" | grep -q 'listen_typo'; then
    pass "config check: a misspelt key is refused at load: $(echo "$out" | grep -m1 "unknown field")"
else
    fail "config check: a misspelt key was not refused: $out"
fi

# Kerberos is built in: a Kafka client asking for GSSAPI is made (and then finds no broker
# on a closed port) instead of "built without Kerberos", and the binary links MIT's GSSAPI
# (ZooKeeper's SASL GSSAPI).
cat >"$work/krb.toml" <<EOF
[kafka]
brokers = "127.0.0.1:9"
[kafka.client]
"security.protocol" = "sasl_plaintext"
"sasl.mechanism" = "GSSAPI"
"sasl.kerberos.kinit.cmd" = "true"
EOF
kafka_out=$($bin --config "$work/krb.toml" topics create 2>&1 || true)
if echo "$kafka_out" | grep -q "no Kafka broker at 127.0.0.1:9" &&
    ! echo "$kafka_out" | grep -q "without Kerberos" && ldd $bin | grep -q libgssapi_krb5; then
    pass "kerberos: a GSSAPI Kafka client is made, libgssapi_krb5 linked ($(echo "$kafka_out" | tail -1 | cut -c1-60)…)"
else
    fail "kerberos: $kafka_out; $(ldd $bin | grep -c gssapi) GSSAPI libraries linked"
fi

# The unit's ExecStart as systemd would run it (instance "node"), with SHARECHECK_BROKERS
# pointing at a port where nothing listens. Started alone it must fail by itself with a
# message naming the brokers (the unit restarts it); started and sent SIGTERM it must be
# gone within the unit's TimeoutStopSec.
port=""
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        port=$p
        break
    fi
done
unit=/lib/systemd/system/sharecheck@.service
exec_start=$(sed -n 's/^ExecStart=//p' $unit | sed 's/%i/node/g')
stop_limit=$(sed -n 's/^TimeoutStopSec=//p' $unit)
run_conf=$conf
# metrics.listen of node.toml taken on this machine (another node running): the same
# configuration with an ephemeral port.
metrics=$(sed -n 's/^listen = "\(.*\)"/\1/p' $conf | head -1)
if (exec 3<>/dev/tcp/${metrics%:*}/${metrics##*:}) 2>/dev/null; then
    sed 's/^listen = .*/listen = "127.0.0.1:0"/' $conf >"$work/node.toml"
    exec_start=${exec_start//$conf/$work/node.toml}
    run_conf="$work/node.toml, metrics.listen $metrics being in use here"
fi
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
SHARECHECK_BROKERS=127.0.0.1:$port $exec_start >"$work/run.log" 2>&1 &
node_pid=$!
t0=$(date +%s%N)
while kill -0 $node_pid 2>/dev/null && [ "$(ms_since "$t0")" -lt 30000 ]; do sleep 0.2; done
if kill -0 $node_pid 2>/dev/null; then
    # Still running after 30 s: a node that waits for its brokers. Then it must say so.
    kill -TERM $node_pid
    wait $node_pid && rc=0 || rc=$?
    node_pid=""
    if grep -q "127.0.0.1:$port.*Connection refused" "$work/run.log"; then
        pass "run: ExecStart ($run_conf), no broker on 127.0.0.1:$port: running after 30 s, logging the refused connection"
    else
        fail "run: running after 30 s without naming the refused broker: $(tail -3 "$work/run.log")"
    fi
else
    wait $node_pid && rc=0 || rc=$?
    node_pid=""
    took=$(ms_since "$t0")
    why=$(grep 'sharecheck: error' "$work/run.log" | tail -1)
    if [ "$rc" != 0 ] && echo "$why" | grep -q "127.0.0.1:$port" &&
        ! echo "$why" | grep -qi 'toml\|parse\|unknown field'; then
        pass "run: ExecStart ($run_conf), no broker on 127.0.0.1:$port: status $rc after $took ms: $why"
    else
        fail "run: status $rc after $took ms: $(tail -3 "$work/run.log")"
    fi
fi
SHARECHECK_BROKERS=127.0.0.1:$port $exec_start >"$work/stop.log" 2>&1 &
node_pid=$!
sleep 3
t0=$(date +%s%N)
kill -TERM $node_pid
while kill -0 $node_pid 2>/dev/null && [ "$(ms_since "$t0")" -lt $((stop_limit * 1000 + 5000)) ]; do
    sleep 0.05
done
took=$(ms_since "$t0")
if kill -0 $node_pid 2>/dev/null; then
    kill -KILL $node_pid
    wait $node_pid || true
    node_pid=""
    fail "stop: still running $took ms after SIGTERM (TimeoutStopSec=$stop_limit)"
else
    wait $node_pid && rc=0 || rc=$?
    node_pid=""
    if [ "$took" -lt $((stop_limit * 1000)) ]; then
        pass "stop: SIGTERM 3 s after the start (still looking for a broker): gone in $took ms (status $rc; TimeoutStopSec=$stop_limit)"
    else
        fail "stop: SIGTERM: gone only after $took ms (status $rc), past TimeoutStopSec=$stop_limit"
    fi
fi

# --- enable offline (as on an image built without systemd running), then remove and purge
if $sudo systemctl enable sharecheck@node.service >"$work/enable.out" 2>&1 &&
    [ -L /etc/systemd/system/multi-user.target.wants/sharecheck@node.service ]; then
    pass "enable: systemctl enable sharecheck@node links it into multi-user.target"
else
    fail "enable: $(cat "$work/enable.out")"
fi
$sudo dpkg -r sharecheck >"$work/remove.out" 2>&1 || true
status=$(dpkg-query -W -f '${db:Status-Abbrev}' sharecheck 2>/dev/null || true)
if [ ! -e $bin ] && [ ! -e /lib/systemd/system/sharecheck@.service ] && [ -f $conf ] &&
    [ "${status% }" = "rc" ]; then
    pass "remove: dpkg -r took the binary and units, kept the conffile (status rc)"
else
    fail "remove: status '$status', $(ls -d $bin /lib/systemd/system/sharecheck@.service $conf 2>&1 | tr '\n' ' ')"
fi
$sudo dpkg -P sharecheck >"$work/purge.out" 2>&1 || true
installed=0
if ! dpkg -s sharecheck >/dev/null 2>&1 && [ ! -e /etc/sharecheck ] &&
    [ ! -e /usr/share/doc/sharecheck ] &&
    [ ! -L /etc/systemd/system/multi-user.target.wants/sharecheck@node.service ]; then
    pass "purge: dpkg -P left no sharecheck files, conffile and enablement link gone"
else
    fail "purge: left $(ls -d /etc/sharecheck /usr/share/doc/sharecheck /etc/systemd/system/multi-user.target.wants/sharecheck@node.service 2>/dev/null | tr '\n' ' ')"
fi

echo "== package test: $failed failed, $(($(date +%s) - start)) s in all"
[ "$failed" = 0 ]
