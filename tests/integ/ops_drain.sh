#!/usr/bin/env bash
# Graceful shutdown.
#  1. SIGTERM while two slow transfers are in flight (bulk.py through a backend that
#     reads at 64 KiB/s; drain_timeout 20 s): the log says draining, a new connection is
#     not relayed, both transfers complete with every byte intact (sha256 both ways),
#     mux443 exits 0 soon after the last one ends and not before.
#  2. SIGINT with drain_timeout = 1 and an idle held connection: after ~1 s the
#     connection is closed with reason "drain timeout" and mux443 exits 0.
#  3. A second SIGTERM during a drain (drain_timeout 30 s, a connection held) makes
#     mux443 exit at once, status 0, logging it.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PSLOW=$(free_port)
PE=$(free_port)
start_bg slow "$PY" "$PEERS/tcp_echo.py" slow "$PSLOW" --mode slow
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
conf() { # DRAIN_TIMEOUT BACKEND_PORT
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
drain_timeout = $1

[backend b]
server = 127.0.0.1:$2

[route]
default = b
INI
}
wait_ready slow
wait_ready echo
ms_now() { date +%s%3N; }

log "1. in-flight transfers complete during the drain"
conf 20 "$PSLOW"
start_mux mux "$T/mux.ini"
# 192 KiB each way through a backend reading 64 KiB/s: ~3 s per transfer.
start_bg bulk1 "$PY" "$PEERS/bulk.py" 127.0.0.1 "$PM" --mb 0.1875
start_bg bulk2 "$PY" "$PEERS/bulk.py" 127.0.0.1 "$PM" --mb 0.1875
wait_count slow 'tcp:slow open' 2 10
kill -TERM "$(pid_of mux)"
t_term=$(ms_now)
wait_log mux 'signal 15: draining' 5
client 127.0.0.1 "$PM" --data '\xffnew\n' --shut-wr --timeout 3 >"$T/new.out" 2>"$T/new.err" || true
[[ ! -s $T/new.out ]] || fail "a connection opened during the drain was relayed: $(cat "$T/new.out")"
kill -0 "$(pid_of mux)" 2>/dev/null || fail "mux443 exited with two transfers in flight"
wait_exit bulk1 30
rc1=$STOP_RC
wait_exit bulk2 30
rc2=$STOP_RC
t_done=$(ms_now)
assert_eq "0 0" "$rc1 $rc2" "bulk.py exit statuses"
for b in bulk1 bulk2; do
    line=$(grep -E '^sent=' "$T/$b.log" || true)
    [[ $line =~ sent=([0-9]+)\ sent_sha256=([0-9a-f]+)\ recv=([0-9]+)\ recv_sha256=([0-9a-f]+) ]] ||
        fail "$b printed no result: $(cat "$T/$b.log")"
    assert_eq "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}" "${BASH_REMATCH[3]} ${BASH_REMATCH[4]}" \
        "$b: bytes and sha256 received back vs sent"
    ((BASH_REMATCH[1] == 196608)) || fail "$b sent ${BASH_REMATCH[1]} bytes"
done
((t_done - t_term >= 1000)) || fail "transfers ended $((t_done - t_term)) ms after SIGTERM: they were not in flight"
wait_exit mux 5
assert_eq 0 "$STOP_RC" "mux443 exit status after draining"
ms=$(($(ms_now) - t_done))
((ms < 3000)) || fail "mux443 exited ${ms} ms after the last transfer ended"
assert_grep 'all connections closed: exiting' "$T/mux.log"
assert_not_grep 'drain timeout' "$T/mux.log" "a transfer was cut by the drain timeout"
n=$(grep -cE 'conn=[0-9]+ .*bytes_in=196608 bytes_out=196608 .*reason=' "$T/mux.log" || true)
assert_eq 2 "$n" "close lines of the two complete transfers (192 KiB each way)"
assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/mux.log"

log "2. SIGINT, drain_timeout = 1, an idle connection"
mv "$T/mux.log" "$T/mux-1.log"
conf 1 "$PE"
start_mux mux "$T/mux.ini"
start_bg hold "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data '\xffidle\n' --hold
wait_ready hold
kill -INT "$(pid_of mux)"
t0=$(ms_now)
wait_log mux 'signal 2: draining' 5
wait_exit mux 10
ms=$(($(ms_now) - t0))
assert_eq 0 "$STOP_RC" "mux443 exit status after the drain timeout"
((ms >= 800 && ms < 4000)) || fail "mux443 exited ${ms} ms after SIGINT (drain_timeout = 1 s)"
assert_grep 'conn=[0-9]+ .*bytes_in=6 bytes_out=6 .*reason="drain timeout"' "$T/mux.log" \
    "the idle connection closed by the drain timeout"
assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/mux.log"
stop hold

log "3. a second SIGTERM during the drain exits at once"
mv "$T/mux.log" "$T/mux-2.log"
conf 30 "$PE"
start_mux mux "$T/mux.ini"
start_bg hold2 "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data '\xffidle\n' --hold
wait_ready hold2
kill -TERM "$(pid_of mux)"
wait_log mux 'signal 15: draining \(up to 30s\)' 5
kill -0 "$(pid_of mux)" 2>/dev/null || fail "mux443 did not wait for the held connection"
kill -TERM "$(pid_of mux)"
t0=$(ms_now)
wait_exit mux 5
ms=$(($(ms_now) - t0))
((ms < 2000)) || fail "mux443 took ${ms} ms to exit on the second SIGTERM"
assert_eq 0 "$STOP_RC" "mux443 exit status on the second signal"
assert_grep 'second signal: exiting at once' "$T/mux.log"
stop hold2
