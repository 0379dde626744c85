#!/usr/bin/env bash
# Bounded by default: with no limit key in the file, 3,000 clients (8 addresses, under
# the default max_connections_per_client) each send a 30 KiB HTTP request head that
# never ends and hold it. The default preread_budget (64 MiB) bounds what they pin:
# buffers that cannot grow end their connection (counted as
# mux443_refused_total{limit="preread_budget"}), mux443's resident memory stays near
# the budget, and a normal HTTP client is still served during the flood. Prints the RSS
# figure. Sanitizer builds: ASan's quarantine is kept small so that RSS shows live
# memory, not freed buffers awaiting reuse.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86:quarantine_size_mb=8}
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= 8192)) || { log "SKIP: open files limit $(ulimit -n) < 8192"; exit 77; }
PM=$(free_port)
PA=$(free_port)
PW=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PW"
# Only what the test needs to hold the flood: no limit key, a long peek_timeout.
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = 127.0.0.1:$PA
workers = 2
peek_timeout = 60s

[backend web]
server = 127.0.0.1:$PW

[route]
http = web
INI
wait_ready web
start_mux mux "$T/mux.ini"
MUXPID=$(pid_of mux)
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$MUXPID/status"; }
rss0=$(rss)
ticks0=$(cpu_ticks "$MUXPID")
body=$(http_body "$PM" /before)
assert_contains "$body" "web" "served before the flood"

# 30 KiB of request head that never ends (no blank line).
HEAD='GET / HTTP/1.1\r\nHost: flood.test\r\nX-Pad: '$(head -c 30700 /dev/zero | tr '\0' a)
for i in 1 2 3 4 5 6 7 8; do
    start_bg "f$i" "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PM" 375 --bind "127.0.1.$i" \
        --data "$HEAD" --timeout 30
done
for i in 1 2 3 4 5 6 7 8; do wait_log "f$i" 'ready flood opened=' 40; done
opened=0
for i in 1 2 3 4 5 6 7 8; do
    n=$(sed -nE 's/.*ready flood opened=([0-9]+).*/\1/p' "$T/f$i.log")
    opened=$((opened + n))
done
log "flood: $opened connections opened"
wait_metric "$PA" 'mux443_refused_total{limit="preread_budget"}' -ge 1 20
# Let the last heads arrive: the count of buffers that could not grow stops changing.
prev=-1
cur=$(count_log mux 'preread_budget .* spent')
while ((cur != prev)); do
    prev=$cur
    sleep 0.5
    cur=$(count_log mux 'preread_budget .* spent')
done
rss1=$(rss)
ticks1=$(cpu_ticks "$MUXPID")
body=$(http_body "$PM" /during)
assert_contains "$body" "web" "a normal client is served during the flood"
metrics "$PA" "$T/m.prom"
refused=$(mval "$T/m.prom" 'mux443_refused_total{limit="preread_budget"}')
budget=$((64 * 1024 * 1024))
held=$((rss1 - rss0))
log "FIGURES: $opened half-sent 30 KiB heads: mux443 RSS $((rss1 / 1048576)) MiB" \
    "(+$((held / 1048576)) MiB over idle $((rss0 / 1048576)) MiB; budget 64 MiB);" \
    "buffers refused or closed at the budget: $refused;" \
    "CPU $(((ticks1 - ticks0) * 1000 / $(getconf CLK_TCK))) ms for $((opened * 30)) KiB of heads"
# The budget bounds the buffers; each connection's own state (struct conn, probe state)
# and the allocator's (and a sanitizer's) overhead come on top: a release build grew by
# 58 MiB, ASan by 96 MiB. Unbounded, the 3,000 heads alone would pin 94 MiB of buffers.
((held < 2 * budget)) ||
    fail "RSS grew by $((held / 1048576)) MiB under the flood (budget 64 MiB)"
for i in 1 2 3 4 5 6 7 8; do stop "f$i"; done
stop_mux mux
