#!/usr/bin/env bash
# Privilege drop (needs root: skipped otherwise).
#  1. user = nobody, group = nogroup, started as root on a port >= 1024: after binding,
#     /proc/PID/status of the process and of every thread shows the dropped uid/gid
#     (real, effective, saved, filesystem), supplementary groups reduced to that group,
#     no effective capability in any thread (CapEff 0), CAP_NET_BIND_SERVICE and
#     CAP_DAC_READ_SEARCH permitted on the main thread only (workers: none), the bounding
#     set trimmed to those two, NoNewPrivs 1; the log says so; it still relays; a SIGHUP
#     reload that reads a root-only certificate and binds a new port below 1024 works as
#     the unprivileged user, and the capabilities are as before after it.
#  1b. the same without CAP_DAC_READ_SEARCH in the bounding set (Docker's default set):
#     it starts, with one warning line, and relays.
#  2. user = a name that does not exist -> `mux443 -t` exits 1 naming FILE:LINE; the
#     same for group; the daemon refuses to start with it (exit 1).
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

if (($(id -u) != 0)); then
    log "SKIP: not root"
    exit 77
fi
getent passwd nobody >/dev/null || {
    log "SKIP: no user nobody"
    exit 77
}
GROUP=nogroup
getent group "$GROUP" >/dev/null || GROUP=nobody
getent group "$GROUP" >/dev/null || {
    log "SKIP: no group nogroup/nobody"
    exit 77
}
UID_N=$(id -u nobody)
GID_N=$(getent group "$GROUP" | cut -d: -f3)

PM=$(free_port)
PA=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo
# The directory and the file are root's alone, as Let's Encrypt keeps certificates: the
# daemon keeps CAP_DAC_READ_SEARCH after dropping root so that SIGHUP can read them.
chmod 700 "$T"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA
user = nobody
group = $GROUP

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
chmod 600 "$T/mux.ini"

log "1. user = nobody, group = $GROUP"
"$MUX443" -t -c "$T/mux.ini" >"$T/t.out" 2>&1 || fail "mux443 -t rejects user = nobody: $(cat "$T/t.out")"
start_mux mux "$T/mux.ini"
PID=$(pid_of mux)
assert_grep "running as user nobody \\(uid $UID_N, gid $GID_N\\)" "$T/mux.log"
# check_caps: every thread of the daemon, as designed (see the header).
check_caps() {
    local st n=0 want_prm
    for st in /proc/"$PID"/task/*/status; do
        n=$((n + 1))
        want_prm=0000000000000000
        [[ $st == "/proc/$PID/task/$PID/status" ]] && want_prm=0000000000000404
        assert_eq 0000000000000000 "$(awk '/^CapEff:/ { print $2 }' "$st")" "CapEff $1 in $st"
        assert_eq "$want_prm" "$(awk '/^CapPrm:/ { print $2 }' "$st")" "CapPrm $1 in $st"
        assert_eq 0000000000000000 "$(awk '/^CapInh:/ { print $2 }' "$st")" "CapInh $1 in $st"
        assert_eq 0000000000000404 "$(awk '/^CapBnd:/ { print $2 }' "$st")" "CapBnd $1 in $st"
        assert_eq 1 "$(awk '/^NoNewPrivs:/ { print $2 }' "$st")" "NoNewPrivs $1 in $st"
    done
    ((n == 3)) || fail "expected 3 threads (main + 2 workers), found $n"
}
check_caps "after the drop"
for st in "/proc/$PID/status" /proc/"$PID"/task/*/status; do
    uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$st")
    gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "$st")
    groups=$(awk '/^Groups:/ { $1 = ""; print substr($0, 2) }' "$st" | xargs)
    assert_eq "$UID_N $UID_N $UID_N $UID_N" "$uids" "Uid (real effective saved fs) in $st"
    assert_eq "$GID_N $GID_N $GID_N $GID_N" "$gids" "Gid (real effective saved fs) in $st"
    assert_eq "$GID_N" "$groups" "supplementary groups in $st"
done
client 127.0.0.1 "$PM" --data '\xffas-nobody\n' --shut-wr --timeout 5 >"$T/c1.out" 2>"$T/c1.err" || true
assert_contains "$(cat "$T/c1.out")" "as-nobody" "relayed by the unprivileged daemon"
[[ $(admin_get "$PA" /healthz "$T/hz") == 200 ]] || fail "/healthz as nobody"
# The reload adds a listener on port 443 (free in the test's own network namespace) and
# a certificate whose key nobody cannot read.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=priv.test" -keyout "$T/priv.key" -out "$T/priv.crt" 2>/dev/null
chmod 600 "$T/priv.key" "$T/priv.crt"
if setpriv --reuid="$UID_N" --regid="$GID_N" --clear-groups cat "$T/priv.key" >/dev/null 2>&1; then
    fail "user nobody can read $T/priv.key: the test proves nothing"
fi
cat >>"$T/mux.ini" <<INI

[listener low]
listen = 127.0.0.1:443

[tls]
cert = $T/priv.crt
key = $T/priv.key
INI
kill -HUP "$PID"
wait_log mux 'reload: .* loaded' 5
assert_grep 'reload: .* loaded \(2 listeners, .*1 certificates\)' "$T/mux.log" "the reload read the root-only certificate"
client 127.0.0.1 "$PM" --data '\xffafter-reload\n' --shut-wr --timeout 5 >"$T/c2.out" 2>"$T/c2.err" || true
assert_contains "$(cat "$T/c2.out")" "after-reload" "relayed after a reload as nobody"
client 127.0.0.1 443 --data '\xffon-443\n' --shut-wr --timeout 5 >"$T/c3.out" 2>"$T/c3.err" || true
assert_contains "$(cat "$T/c3.out")" "on-443" "relayed on port 443 bound by a reload as nobody"
check_caps "after the reload"
stop_mux mux

log "1b. without CAP_DAC_READ_SEARCH (as in Docker's default set): starts, with a warning"
start_bg muxnodac setpriv --bounding-set=-dac_read_search --inh-caps=-all "$MUX443" -c "$T/mux.ini"
wait_log muxnodac 'ready: listening on' 20
assert_grep 'capabilities for reloads not available \(CAP_DAC_READ_SEARCH missing\)' "$T/muxnodac.log"
assert_eq 1 "$(count_log muxnodac 'capabilities for reloads not available')" "one warning line"
PID=$(pid_of muxnodac)
assert_eq 0000000000000000 "$(awk '/^CapEff:/ { print $2 }' "/proc/$PID/status")" "CapEff without DAC_READ_SEARCH"
assert_eq 0000000000000400 "$(awk '/^CapPrm:/ { print $2 }' "/proc/$PID/status")" "CapPrm without DAC_READ_SEARCH"
client 127.0.0.1 "$PM" --data '\xffno-dac\n' --shut-wr --timeout 5 >"$T/c4.out" 2>"$T/c4.err" || true
assert_contains "$(cat "$T/c4.out")" "no-dac" "relayed without CAP_DAC_READ_SEARCH"
stop_mux muxnodac

log "2. a user or group that does not exist"
BADU=mux443-no-such-user-$$
BADG=mux443-no-such-group-$$
getent passwd "$BADU" >/dev/null && fail "user $BADU exists"
sed "s/^user = nobody\$/user = $BADU/" "$T/mux.ini" >"$T/baduser.ini"
line=$(grep -n '^user = ' "$T/baduser.ini" | cut -d: -f1)
rc=0
"$MUX443" -t -c "$T/baduser.ini" >"$T/baduser.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t exit status with user = $BADU"
assert_grep "^$T/baduser.ini:$line: \\[mux443\\] user: no such user \\(got '$BADU'\\)" "$T/baduser.out"
rc=0
timeout 10 "$MUX443" -c "$T/baduser.ini" >"$T/baduser-run.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 exit status when started with user = $BADU"
assert_not_grep 'ready:' "$T/baduser-run.out" "started with a user that does not exist"

sed "s/^group = $GROUP\$/group = $BADG/" "$T/mux.ini" >"$T/badgroup.ini"
line=$(grep -n '^group = ' "$T/badgroup.ini" | cut -d: -f1)
rc=0
"$MUX443" -t -c "$T/badgroup.ini" >"$T/badgroup.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t exit status with group = $BADG"
assert_grep "^$T/badgroup.ini:$line: \\[mux443\\] group: no such group \\(got '$BADG'\\)" "$T/badgroup.out"
