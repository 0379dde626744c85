#!/usr/bin/env bash
# PROXY protocol inbound: a [listener] with proxy_protocol = yes takes the client
# address from a v2 or v1 header (fake source 192.0.2.7:1234 / 192.0.2.8:4321), strips
# it, detects the HTTP request behind it, logs client=<that address> and passes it on
# to a proxy_protocol = v1 backend. Without a header that listener closes the
# connection with a logged reason; the main listener (no proxy_protocol) never trusts
# a PROXY header.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PL=$(free_port)
PW=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PW" --proxy
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
peek_timeout = 2

[listener lb]
listen = 127.0.0.1:$PL
proxy_protocol = yes

[backend web]
server = 127.0.0.1:$PW
proxy_protocol = v1

[route]
http = web
INI
wait_ready web
start_mux mux "$T/mux.ini"

REQ='GET /in HTTP/1.0\r\nHost: lb.test\r\n\r\n'
out=$(client 127.0.0.1 "$PL" --proxy v2 --proxy-src 192.0.2.7:1234 --data "$REQ" 2>/dev/null)
assert_contains "$out" 'web:web method=GET path=/in host=lb.test proxy="v1 src=192.0.2.7:1234 ' \
    "backend sees the v2 header's source"
wait_close mux 'client=192\.0\.2\.7:1234 '
assert_grep 'client=192\.0\.2\.7:1234 listener=lb class=http .*backend=web' "$T/mux.log"

out=$(client 127.0.0.1 "$PL" --proxy v1 --proxy-src 192.0.2.8:4321 --data "$REQ" 2>/dev/null)
assert_contains "$out" 'proxy="v1 src=192.0.2.8:4321 ' "backend sees the v1 header's source"
wait_close mux 'client=192\.0\.2\.8:4321 '
assert_grep 'client=192\.0\.2\.8:4321 listener=lb class=http .*backend=web' "$T/mux.log"

# The header split over several segments still works.
out=$(client 127.0.0.1 "$PL" --proxy v2 --proxy-src 192.0.2.9:999 --data "$REQ" --split 5 2>/dev/null)
assert_contains "$out" 'proxy="v1 src=192.0.2.9:999 ' "v2 header + request in pieces"

# No header on the proxy listener: closed, logged, the backend never sees it.
nweb=$(count_log web 'web:web')
client 127.0.0.1 "$PL" --data "$REQ" --timeout 10 >"$T/nohdr.out" 2>"$T/nohdr.err"
assert_grep 'end=(eof|reset)' "$T/nohdr.err" "no-header connection closed by mux443"
assert_not_grep 'HTTP/1' "$T/nohdr.out" "no-header connection answered"
wait_close mux 'client=127\.0\.0\.1:[0-9]+ listener=lb'
line=$(close_lines mux 'client=127\.0\.0\.1:[0-9]+ listener=lb')
assert_not_contains "$line" 'reason="done"' "no-header close reason"
assert_not_contains "$line" 'backend=web' "no-header connection reached a backend"
assert_contains "$line" 'reason="' "no-header close reason"
assert_eq "$nweb" "$(count_log web 'web:web')" "backend requests after a no-header connection"

# A broken header (bad v1 line) is refused too.
client 127.0.0.1 "$PL" --data 'PROXY TCP4 nonsense\r\n'"$REQ" --timeout 10 >"$T/bad.out" 2>"$T/bad.err"
assert_not_grep 'HTTP/1' "$T/bad.out" "bad PROXY header answered"

# The main listener does not trust PROXY headers: no spoofed client address.
client 127.0.0.1 "$PM" --proxy v1 --proxy-src 192.0.2.66:6666 --data "$REQ" --timeout 10 \
    >"$T/untrusted.out" 2>"$T/untrusted.err" || true
wait_count mux 'conn=[0-9]+ .*listener=main.*reason=' 1
assert_not_grep 'client=192\.0\.2\.66' "$T/mux.log" "PROXY header trusted on a listener without proxy_protocol"
assert_not_grep 'src=192\.0\.2\.66' "$T/web.log" "spoofed address passed to the backend"
stop_mux mux
