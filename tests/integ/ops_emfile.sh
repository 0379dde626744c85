#!/usr/bin/env bash
# Out of file descriptors. mux443 runs under `prlimit --nofile=64:64` (it cannot raise
# the soft limit past the hard one) with a long peek_timeout; a held connection is open
# first; then 200 silent connections flood it and stay open. Expected:
#   - the log says accept is paused (EMFILE), and mux443 does not spin: its CPU time
#     (utime + stime from /proc/PID/stat) over 2 s of a held flood stays under 0.2 s, and
#     it retries (and logs) about once a second per worker, not in a loop;
#   - the connection held from before keeps relaying during the flood;
#   - once the flood is closed, a new request is served again (polled), the flood's
#     connections are logged as closed, and mux443 exits 0 on SIGTERM.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

command -v prlimit >/dev/null || {
    log "SKIP: prlimit (util-linux) is not installed"
    exit 77
}
PM=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
peek_timeout = 60s
# Unbounded, so that the flood reaches EMFILE (the default max_connections, derived
# from the descriptor limit, would refuse it first).
max_connections = 0

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI

start_bg mux prlimit --nofile=64:64 "$MUX443" -c "$T/mux.ini"
wait_log mux 'ready: listening on' 20
assert_grep 'open files limit: 64 \(hard limit 64\)' "$T/mux.log" "mux443 runs with 64 descriptors"
PID=$(pid_of mux)
# prlimit execs mux443: the pid is mux443's own.
[[ $(readlink "/proc/$PID/exe") == "$MUX443" ]] || fail "pid $PID is not mux443"

start_bg hold "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data '\xffheld\n' --hold
wait_ready hold

log "flooding with 200 silent connections"
start_bg flood "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PM" 200
wait_ready flood 20
assert_grep 'opened=[1-9]' "$T/flood.log" "flood connections"
wait_log mux 'worker [0-9]+: accept on 127\.0\.0\.1:'"$PM"' paused for 1s' 10

PAUSED_RE='worker [0-9]+: accept on .* paused'
t0=$(cpu_ticks "$PID")
l0=$(count_log mux "$PAUSED_RE")
w0=$(date +%s%3N)
# A measurement window (not a synchronisation): the flood is held for 2 s.
sleep 2
t1=$(cpu_ticks "$PID")
l1=$(count_log mux "$PAUSED_RE")
w1=$(date +%s%3N)
hz=$(getconf CLK_TCK)
cpu_ms=$(((t1 - t0) * 1000 / hz))
log "CPU while the flood is held: ${cpu_ms} ms over $((w1 - w0)) ms"
((cpu_ms < 200)) || fail "mux443 used ${cpu_ms} ms of CPU in $((w1 - w0)) ms with accept out of descriptors: it spins"
# Paused for 1 s at a time: about one retry (and one line) per worker per second.
((l1 - l0 <= 8)) || fail "$((l1 - l0)) 'accept paused' lines in $((w1 - w0)) ms: accept is retried in a loop"

kill -USR1 "$(pid_of hold)"
wait_log hold 'hold: ping 1 (ok|FAILED)' 15
assert_grep 'hold: ping 1 ok' "$T/hold.log" "held connection relays while out of descriptors"

log "closing the flood"
stop flood
deadline=$((SECONDS + 20))
while :; do
    out=$(client 127.0.0.1 "$PM" --data '\xffafter-flood\n' --shut-wr --timeout 3 2>/dev/null || true)
    [[ $out == *after-flood* ]] && break
    ((SECONDS < deadline)) || fail "mux443 does not serve new connections after the flood closed"
    sleep 0.2
done
wait_log mux 'reason="client closed (during detection|without sending a byte)' 10
kill -USR1 "$(pid_of hold)"
wait_log hold 'hold: ping 2 (ok|FAILED)' 15
assert_grep 'hold: ping 2 ok' "$T/hold.log" "held connection after the flood"
stop hold
stop_mux mux
