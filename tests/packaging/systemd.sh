#!/usr/bin/env bash
# packaging/systemd/mux443.service passes `systemd-analyze verify` (pointed at the
# binary under test) and scores "OK" (exposure <= 2.5) in `systemd-analyze
# security`; TimeoutStopSec stays above the default drain_timeout.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need systemd-analyze
UNIT=$REPO/packaging/systemd/mux443.service

# verify wants every Exec path to exist: run it on a copy naming the test binary.
sed "s#/usr/sbin/mux443#$MUX443#g" "$UNIT" >"$T/mux443.service"
(cd "$T" && systemd-analyze verify --man=no mux443.service) >"$T/verify.out" 2>&1 || {
    cat "$T/verify.out" >&2
    fail "systemd-analyze verify"
}
[[ -s $T/verify.out ]] && { cat "$T/verify.out" >&2; fail "systemd-analyze verify warnings"; }
log "systemd-analyze verify: clean"

if (cd "$T" && systemd-analyze security --offline=yes --threshold=25 mux443.service) \
    >"$T/security.out" 2>&1; then
    log "$(tail -n 1 "$T/security.out")"
elif grep -q "Overall exposure" "$T/security.out"; then
    grep "✗" "$T/security.out" >&2 || true
    fail "$(tail -n 1 "$T/security.out") (want <= 2.5)"
else
    log "systemd-analyze security --offline unsupported here: skipped that part"
fi

# Shutdown: TimeoutStopSec must exceed drain_timeout's default.
drain=$("$MUX443" --help-config | awk '$1 == "drain_timeout" && !d { sub(/.*default: /, ""); d = $0 } END { print d }')
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$UNIT")
[[ $drain =~ ^([0-9]+)s$ ]] || fail "cannot read drain_timeout default from --help-config ('$drain')"
((stop > BASH_REMATCH[1])) || fail "TimeoutStopSec=$stop not above drain_timeout $drain"
# shellcheck disable=SC2016 # a literal $MAINPID
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT" || fail "ExecReload does not send SIGHUP"
grep -q '^ExecStartPre=/usr/sbin/mux443 -t -c /etc/mux443/mux443.ini$' "$UNIT" ||
    fail "ExecStartPre does not check the configuration"
log "TimeoutStopSec=${stop}s > drain_timeout $drain"
