#!/usr/bin/env bash
# Bad input and broken backends, while a healthy relayed connection stays open through
# each mux443 instance and still echoes at the end:
#   strict instance (no default / on_timeout, peek_timeout 1):
#     garbage -> closed, "unrecognised"; 1 byte/s TLS hello -> "peek timeout" long
#     before it ends; close mid-hello -> logged; refusing backend -> client closed,
#     reason names the refusal; black-holed first server -> "connect timeout" and
#     failover to the next one (connect_timeout 1); client half-close -> the response
#     still arrives; route idle_timeout -> closed with "idle timeout".
#   lenient instance ([route] default and on_timeout set):
#     garbage -> relayed to the default backend; silent client -> on_timeout backend.
# (`default` and `on_timeout` are global to a config, hence two instances.)
# Each bad client connects from its own 127.0.0.x so its close line can be picked out.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PA=$(free_port)
PB=$(free_port)
PWEB=$(free_port)
PWEB2=$(free_port)
PSIG=$(free_port)
PECHO=$(free_port)
PJUNK=$(free_port)
PLATE=$(free_port)
PBH=$(free_port)
PREF=$(free_port) # nothing listens here: connections are refused
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg web2 "$PY" "$PEERS/http_server.py" web2 "$PWEB2"
start_bg sig "$PY" "$PEERS/ws_echo.py" sig "$PSIG"
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PECHO"
start_bg junk "$PY" "$PEERS/tcp_echo.py" junk "$PJUNK" --hello
start_bg late "$PY" "$PEERS/tcp_echo.py" late "$PLATE" --hello
start_bg blackhole "$PY" "$PEERS/blackhole.py" "$PBH"

cat >"$T/strict.ini" <<INI
[mux443]
listen = 127.0.0.1:$PA
workers = 2
peek_timeout = 1
connect_timeout = 1

[backend web]
server = 127.0.0.1:$PWEB

[backend signalling]
server = 127.0.0.1:$PSIG

[backend echo]
server = 127.0.0.1:$PECHO

[backend refused]
server = 127.0.0.1:$PREF

[backend pool]
server = 127.0.0.1:$PBH, 127.0.0.1:$PWEB2
connect_timeout = 1

[route refused]
host = refused.test
backend = refused

[route pool]
host = pool.test
backend = pool

[route idle]
host = idle.test
backend = echo
idle_timeout = 1

[route]
websocket = signalling
http = web
INI
cat >"$T/lenient.ini" <<INI
[mux443]
listen = 127.0.0.1:$PB
workers = 2
peek_timeout = 1

[backend junk]
server = 127.0.0.1:$PJUNK

[backend late]
server = 127.0.0.1:$PLATE

[route]
default = junk
on_timeout = late
INI
for p in web web2 sig echo junk late blackhole; do wait_ready "$p"; done
start_mux strict "$T/strict.ini"
start_mux lenient "$T/lenient.ini"

# The healthy connections: a WebSocket through `strict`, raw bytes through `lenient`.
start_bg hold-ws "$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PA/hold" still-here --hold
start_bg hold-raw "$PY" "$PEERS/client.py" 127.0.0.1 "$PB" --data '\xffhold-ping\n' --hold
wait_ready hold-ws
wait_ready hold-raw
kill -USR1 "$(pid_of hold-ws)" "$(pid_of hold-raw)"
wait_log hold-ws 'hold: ping 1 ok'
wait_log hold-raw 'hold: ping 1 ok'

GARBAGE='\xff\xfe\x00\x01garbage that no probe knows\x00\x02\x03\r\n'
TLS_HELLO=$VECTORS/openssl-s_client-clienthello.bin

# closeline MUX IP: waits for and prints the close line of the client from 127.0.0.IP.
closeline() {
    wait_close "$1" "client=127\\.0\\.0\\.$2:" 20
    close_lines "$1" "client=127\\.0\\.0\\.$2:"
}

log "garbage, no default route"
client 127.0.0.1 "$PA" --bind 127.0.0.11 --data "$GARBAGE" --timeout 10 >"$T/c11.out" 2>"$T/c11.err"
assert_grep 'end=(eof|reset)' "$T/c11.err" "garbage client closed by mux443"
line=$(closeline strict 11)
assert_contains "$line" "class=unknown" "garbage close line"
assert_contains "$line" 'reason="unrecognised' "garbage close line"

log "slow client: 1 byte/s TLS hello, peek_timeout 1"
client 127.0.0.1 "$PA" --bind 127.0.0.12 --file "$TLS_HELLO" --slow 1 --timeout 10 \
    >"$T/c12.out" 2>"$T/c12.err"
assert_grep 'end=(closed-while-sending|eof|reset)' "$T/c12.err" "slow client closed"
t=$(sed -n 's/.* t=\([0-9.]*\).*/\1/p' "$T/c12.err")
sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$T/c12.err")
((${t%.*} < 5)) || fail "slow client closed after ${t}s (peek_timeout is 1 s)"
((sent < 10)) || fail "slow client sent $sent bytes before being closed"
line=$(closeline strict 12)
assert_contains "$line" 'reason="peek timeout' "slow client close line"

log "client closes mid-hello"
client 127.0.0.1 "$PA" --bind 127.0.0.13 --file "$TLS_HELLO" --close-after 100 2>"$T/c13.err"
line=$(closeline strict 13)
assert_contains "$line" 'reason="client closed' "mid-hello close line"

log "backend refuses"
REQ='GET / HTTP/1.1\r\nHost: refused.test\r\nConnection: close\r\n\r\n'
client 127.0.0.1 "$PA" --bind 127.0.0.14 --data "$REQ" --timeout 10 >"$T/c14.out" 2>"$T/c14.err"
assert_grep 'end=(eof|reset)' "$T/c14.err" "client of a refusing backend closed"
line=$(closeline strict 14)
assert_contains "$line" 'backend=refused' "refused close line"
[[ $line =~ reason=\"[^\"]*refused ]] || fail "refused close line does not name the refusal: $line"

log "black-holed first server: connect timeout, failover"
for i in 1 2; do
    out=$(client 127.0.0.1 "$PA" --bind 127.0.0.15 --data 'GET /pool HTTP/1.0\r\nHost: pool.test\r\n\r\n' \
        --timeout 10 2>"$T/c15-$i.err")
    assert_contains "$out" "web:web2 method=GET path=/pool" "pool request $i answered by the next server"
done
assert_grep 'connect timeout' "$T/strict.log" "connect timeout logged"
wait_count strict 'client=127\.0\.0\.15:.*reason=' 2
assert_grep 'client=127\.0\.0\.15:.*backend=pool server=127\.0\.0\.1:'"$PWEB2" "$T/strict.log"
assert_not_grep 'client=127\.0\.0\.15:.*server=127\.0\.0\.1:'"$PBH"' .*reason="done' "$T/strict.log"

log "client half-close: the response still arrives"
out=$(client 127.0.0.1 "$PA" --bind 127.0.0.16 --data 'GET /half HTTP/1.0\r\nHost: h.test\r\n\r\n' \
    --shut-wr --timeout 10 2>"$T/c16.err")
assert_contains "$out" "web:web method=GET path=/half" "response after the client's SHUT_WR"
assert_grep 'end=eof' "$T/c16.err"

log "route idle_timeout 1"
client 127.0.0.1 "$PA" --bind 127.0.0.17 --data 'GET /idle HTTP/1.1\r\nHost: idle.test\r\n\r\n' \
    --timeout 10 >"$T/c17.out" 2>"$T/c17.err"
assert_grep '^GET /idle HTTP/1.1' "$T/c17.out" "idle route echoed"
assert_grep 'end=(eof|reset)' "$T/c17.err" "idle connection closed"
t=$(sed -n 's/.* t=\([0-9.]*\).*/\1/p' "$T/c17.err")
((${t%.*} < 5)) || fail "idle connection closed after ${t}s (idle_timeout 1)"
line=$(closeline strict 17)
assert_contains "$line" 'reason="idle timeout' "idle close line"

log "garbage with a default route"
client 127.0.0.1 "$PB" --bind 127.0.0.21 --data "$GARBAGE" --shut-wr --timeout 10 >"$T/c21.out" 2>"$T/c21.err"
assert_grep '^tcp:junk$' "$T/c21.out" "garbage relayed to the default backend"
# shellcheck disable=SC2059 # the format holds the escapes
assert_eq "$(printf "$GARBAGE" | sha256sum)" "$(tail -c +10 "$T/c21.out" | sha256sum)" "garbage bytes relayed intact"
line=$(closeline lenient 21)
assert_contains "$line" "class=unknown" "default close line"
assert_contains "$line" "backend=junk" "default close line"

log "silent client with on_timeout"
out=$(client 127.0.0.1 "$PB" --bind 127.0.0.22 --delay 2.5 --data 'finally\n' --shut-wr --timeout 10 \
    2>"$T/c22.err")
assert_contains "$out" "tcp:late" "silent client relayed to the on_timeout backend"
assert_contains "$out" "finally" "late bytes relayed"
line=$(closeline lenient 22)
assert_contains "$line" "class=timeout" "on_timeout close line"
assert_contains "$line" "backend=late" "on_timeout close line"

log "the healthy connections still echo"
kill -USR1 "$(pid_of hold-ws)" "$(pid_of hold-raw)"
wait_log hold-ws 'hold: ping 2 (ok|FAILED)'
wait_log hold-raw 'hold: ping 2 (ok|FAILED)'
assert_not_grep FAILED "$T/hold-ws.log" "WebSocket held across the bad input"
assert_not_grep FAILED "$T/hold-raw.log" "raw connection held across the bad input"
assert_grep 'hold: ping 2 ok' "$T/hold-ws.log"
assert_grep 'hold: ping 2 ok' "$T/hold-raw.log"
stop hold-ws
stop hold-raw
stop_mux strict
stop_mux lenient
