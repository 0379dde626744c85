#!/usr/bin/env bash
# PROXY protocol outbound: a backend with proxy_protocol = v1 (and one with v2) gets a
# header carrying the real client address (the client connects from 127.0.0.2) before
# the client's own first bytes, which follow unchanged.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PS=$(free_port)
start_bg sink "$PY" "$PEERS/tcp_echo.py" sink "$PS" --proxy
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend sink-v1]
server = 127.0.0.1:$PS
proxy_protocol = v1

[backend sink-v2]
server = 127.0.0.1:$PS
proxy_protocol = v2

[route v2]
host = v2.test
backend = sink-v2

[route]
http = sink-v1
INI
wait_ready sink
start_mux mux "$T/mux.ini"

REQ='GET /pp HTTP/1.0\r\nHost: v1.test\r\n\r\n'
client 127.0.0.1 "$PM" --bind 127.0.0.2 --data "$REQ" --shut-wr >"$T/v1.out" 2>"$T/v1.err"
local_addr=$(sed -n 's/.* local=\([0-9.:]*\).*/\1/p' "$T/v1.err")
assert_eq "proxy: v1 src=$local_addr dst=127.0.0.1:$PM" "$(head -n1 "$T/v1.out")" "PROXY v1 header"
assert_contains "$local_addr" "127.0.0.2:" "client bound to 127.0.0.2"
# shellcheck disable=SC2059 # the format holds the escapes
assert_eq "$(printf "$REQ")" "$(tail -n +2 "$T/v1.out")" "request bytes after the header"
assert_grep "tcp:sink proxy: v1 src=$local_addr dst=127\.0\.0\.1:$PM" "$T/sink.log"

REQ2='GET /pp2 HTTP/1.0\r\nHost: v2.test\r\n\r\n'
client 127.0.0.1 "$PM" --bind 127.0.0.2 --data "$REQ2" --shut-wr >"$T/v2.out" 2>"$T/v2.err"
local_addr=$(sed -n 's/.* local=\([0-9.:]*\).*/\1/p' "$T/v2.err")
assert_eq "proxy: v2 src=$local_addr dst=127.0.0.1:$PM" "$(head -n1 "$T/v2.out")" "PROXY v2 header"
# shellcheck disable=SC2059 # the format holds the escapes
assert_eq "$(printf "$REQ2")" "$(tail -n +2 "$T/v2.out")" "request bytes after the v2 header"

wait_count mux 'conn=[0-9]+ .*reason=' 2
assert_grep 'client=127\.0\.0\.2:[0-9]+ .*class=http .*backend=sink-v1' "$T/mux.log"
assert_grep 'client=127\.0\.0\.2:[0-9]+ .*class=http .*route=v2 backend=sink-v2' "$T/mux.log"
stop_mux mux
