#!/usr/bin/env bash
# Failover when a server refuses the connect. mux443 learns that a connect failed from
# the first write on the new socket (the preread bytes, or the PROXY header), not from a
# getsockopt(SO_ERROR) of its own: the refused server must still be logged and skipped,
# the next one must get the client's bytes whole, and a pool where every server refuses
# must end the connection with the reason.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PE=$(free_port)
PS=$(free_port)
DEAD1=$(free_port) # nothing listens on these: connects are refused
DEAD2=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg sink "$PY" "$PEERS/tcp_echo.py" sink "$PS" --proxy
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1

[backend plain]
server = 127.0.0.1:$DEAD1, 127.0.0.1:$PE

[backend px]
server = 127.0.0.1:$DEAD1, 127.0.0.1:$PS
proxy_protocol = v1

[backend none]
server = 127.0.0.1:$DEAD1, 127.0.0.1:$DEAD2

[route px]
host = px.test
backend = px

[route none]
host = none.test
backend = none

[route]
http = plain
INI
wait_ready echo
wait_ready sink
start_mux mux "$T/mux.ini"

log "1. first server refuses, the second gets the preread bytes whole"
REQ='GET /fo HTTP/1.0\r\nHost: plain.test\r\n\r\n'
client 127.0.0.1 "$PM" --data "$REQ" --shut-wr >"$T/plain.out" 2>"$T/plain.err"
# shellcheck disable=SC2059 # the format holds the escapes
assert_eq "$(printf "$REQ")" "$(cat "$T/plain.out")" "echo of the request through the second server"
wait_log mux "backend plain server 127.0.0.1:$DEAD1: Connection refused; trying 127.0.0.1:$PE"
wait_log mux "server=127.0.0.1:$PE .*reason=\"done\""

log "2. the same with a PROXY header as the first write"
REQ='GET /px HTTP/1.0\r\nHost: px.test\r\n\r\n'
client 127.0.0.1 "$PM" --data "$REQ" --shut-wr >"$T/px.out" 2>"$T/px.err"
assert_contains "$(head -n1 "$T/px.out")" "proxy: v1 src=127.0.0.1:" "PROXY v1 header at the second server"
# shellcheck disable=SC2059
assert_eq "$(printf "$REQ")" "$(tail -n +2 "$T/px.out")" "request bytes after the header"
wait_log mux "backend px server 127.0.0.1:$DEAD1: Connection refused; trying 127.0.0.1:$PS"

log "3. every server refuses: the connection ends with the last failure"
client 127.0.0.1 "$PM" --data 'GET / HTTP/1.0\r\nHost: none.test\r\n\r\n' --shut-wr \
    >"$T/none.out" 2>"$T/none.err" || true
[[ ! -s $T/none.out ]] || fail "a refused pool answered: $(head -c 200 "$T/none.out")"
wait_log mux "reason=\"backend none: all servers failed \\(last 127.0.0.1:$DEAD2: Connection refused\\)\""
