#!/usr/bin/env bash
# Large transfer with back-pressure: 20 MB each way through mux443 (client -> echo
# backend -> client), sha256 compared on every side. The client reads nothing for the
# first 2 s and then reads slowly (8 MB/s): mux443 must stop reading when the other
# side cannot take more, so its RSS grows by no more than a few MB.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

MB=20
MAX_GROWTH_KB=${MAX_GROWTH_KB:-8192}
PM=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
wait_ready echo
start_mux mux "$T/mux.ini"
MUXPID=$(pid_of mux)
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$MUXPID/status"; }

# Warm up (first connection, lazy allocations), then take the baseline.
client 127.0.0.1 "$PM" --data '\xffwarm-up\n' --shut-wr >/dev/null 2>&1
wait_count mux 'conn=[0-9]+ .*reason=' 1
base=$(rss)

start_bg bulk "$PY" "$PEERS/bulk.py" 127.0.0.1 "$PM" --mb "$MB" --read-rate 8 --pause-first 2
peak=$base
while kill -0 "$(pid_of bulk)" 2>/dev/null; do
    r=$(rss)
    ((r > peak)) && peak=$r
    sleep 0.1 # sampling interval, not synchronisation
done
stop bulk
((STOP_RC == 0)) || fail "bulk client failed: $(cat "$T/bulk.log")"
after=$(rss)
log "VmRSS kB: before=$base peak=$peak after=$after"

line=$(grep '^sent=' "$T/bulk.log")
sent_sha=$(sed -n 's/.*sent_sha256=\([0-9a-f]*\).*/\1/p' <<<"$line")
recv_sha=$(sed -n 's/.*recv_sha256=\([0-9a-f]*\).*/\1/p' <<<"$line")
recv=$(sed -n 's/.* recv=\([0-9]*\).*/\1/p' <<<"$line")
assert_eq $((MB * 1048576)) "$recv" "bytes received back"
assert_eq "$sent_sha" "$recv_sha" "sha256 sent vs received"
wait_log echo "eof in=$((MB * 1048576)) " 20
assert_grep "eof in=$((MB * 1048576)) in_sha256=$sent_sha " "$T/echo.log" "sha256 at the backend"
((peak - base <= MAX_GROWTH_KB)) ||
    fail "mux443 RSS grew by $((peak - base)) kB during the transfer (limit $MAX_GROWTH_KB kB)"
wait_count mux 'conn=[0-9]+ .*reason=' 2
assert_grep "bytes_in=$((MB * 1048576)) bytes_out=$((MB * 1048576)) " "$T/mux.log" "byte counters"
stop_mux mux
