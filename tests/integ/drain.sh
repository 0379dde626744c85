#!/usr/bin/env bash
# SIGTERM drains: mux443 stops accepting at once, keeps relaying the connections it has
# (a held connection still echoes), closes them when drain_timeout (3 s) runs out, and
# exits 0. A second case: when the last connection ends first, it exits right away.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
drain_timeout = 3

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
wait_ready echo

log "1. drain_timeout expires with a connection open"
start_mux mux "$T/mux.ini"
start_bg hold "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data '\xffdrain-ping\n' --hold
wait_ready hold
kill -TERM "$(pid_of mux)"
t0=$(date +%s%3N)
wait_log mux 'draining' 5
client 127.0.0.1 "$PM" --data '\xffnew\n' --shut-wr --timeout 3 >"$T/new.out" 2>"$T/new.err" || true
assert_not_grep 'new' "$T/new.out" "a connection accepted while draining was relayed"
kill -USR1 "$(pid_of hold)"
wait_log hold 'hold: ping 1 (ok|FAILED)'
assert_grep 'hold: ping 1 ok' "$T/hold.log" "held connection relays during the drain"
wait_exit mux 10
((STOP_RC == 0)) || fail "mux443 exited $STOP_RC after draining"
ms=$(($(date +%s%3N) - t0))
((ms >= 2500)) || fail "mux443 exited ${ms} ms after SIGTERM, before drain_timeout (3 s), with a connection open"
assert_grep 'conn=[0-9]+ .*bytes_in=[1-9].*reason=' "$T/mux.log" "close line of the drained connection"
assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/mux.log"
stop hold

log "2. the last connection ends before drain_timeout"
mv "$T/mux.log" "$T/mux-1.log"
start_mux mux "$T/mux.ini"
start_bg hold2 "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data '\xffdrain-ping\n' --hold
wait_ready hold2
kill -TERM "$(pid_of mux)"
wait_log mux 'draining' 5
t0=$(date +%s%3N)
stop hold2 # closes its connection: mux443 has nothing left to wait for
wait_exit mux 5
ms=$(($(date +%s%3N) - t0))
((ms < 2000)) || fail "mux443 took ${ms} ms to exit after its last connection ended"
((STOP_RC == 0)) || fail "mux443 exited $STOP_RC after its last connection ended"
