#!/usr/bin/env bash
# HTTP routing: curl through mux443 to HTTP backends chosen by Host (exact and
# wildcard), by path prefix, and by the [route] class map's http default; the response
# body names the backend that answered, the close log names the route.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PA=$(free_port)
PB=$(free_port)
PD=$(free_port)
start_bg web-a "$PY" "$PEERS/http_server.py" a "$PA"
start_bg web-api "$PY" "$PEERS/http_server.py" api "$PB"
start_bg web-def "$PY" "$PEERS/http_server.py" def "$PD"

cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
log_level = info

[backend web-a]
server = 127.0.0.1:$PA

[backend web-api]
server = 127.0.0.1:$PB

[backend web-def]
server = 127.0.0.1:$PD

[route by-host]
class = http
host = a.test, *.wild.test
backend = web-a

[route by-path]
path = /api
backend = web-api

[route]
http = web-def
INI
wait_ready web-a
wait_ready web-api
wait_ready web-def
start_mux mux "$T/mux.ini"

get() { curl -sS --max-time 10 "$@"; }
URL=http://127.0.0.1:$PM

out=$(get -H 'Host: a.test' "$URL/")
assert_contains "$out" "web:a method=GET path=/ host=a.test" "Host a.test"
out=$(get -H 'Host: a.test:8443' "$URL/x")
assert_contains "$out" "web:a method=GET path=/x" "Host with a port"
out=$(get -H 'Host: deep.x.wild.test' "$URL/")
assert_contains "$out" "web:a " "wildcard Host *.wild.test"
out=$(get -H 'Host: wild.test' "$URL/")
assert_contains "$out" "web:def " "bare wild.test must not match *.wild.test"
out=$(get -H 'Host: other.test' "$URL/api/v1?q=1")
assert_contains "$out" "web:api method=GET path=/api/v1?q=1" "path prefix /api"
out=$(get -H 'Host: a.test' "$URL/api")
assert_contains "$out" "web:a " "first rule wins (host before path)"
out=$(get -H 'Host: other.test' -d 'hello=1' "$URL/api/post")
assert_contains "$out" "web:api method=POST path=/api/post" "POST by path"
out=$(get -H 'Host: other.test' "$URL/")
assert_contains "$out" "web:def method=GET path=/ host=other.test" "[route] http default"
out=$(get -H 'Host: other.test' "$URL/ap")
assert_contains "$out" "web:def " "/ap is not under /api"

# Requests whose host is ambiguous are refused before any backend sees them (RFC 9112
# 3.2): two Host headers, and an absolute-form target naming another host than Host
# (routed by one, served by the other otherwise).
confused() { # NAME REQUEST
    "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data "$2" --timeout 5 >"$T/$1.out" 2>"$T/$1.err" || true
    [[ ! -s $T/$1.out ]] || fail "$1: an ambiguous request was answered: $(head -c 200 "$T/$1.out")"
}
confused two-hosts 'GET / HTTP/1.1\r\nHost: other.test\r\nHost: a.test\r\n\r\n'
confused absolute 'GET http://a.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n'
wait_log mux 'reason="refused: two Host headers"'
wait_log mux 'reason="refused: absolute-form request target names another host than the Host header"'
# The same host in both forms is fine.
out=$("$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --timeout 5 \
    --data "GET http://a.test:$PM/abs HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: close\\r\\n\\r\\n" \
    2>/dev/null || true)
assert_contains "$out" "web:a " "absolute-form with a matching Host"

# One close line per request, naming class, host, path, route and backend.
wait_count mux 'conn=[0-9]+ .*reason=' 12
assert_grep 'class=http .*host="a\.test".*path="/".*route=by-host backend=web-a server=127\.0\.0\.1:'"$PA" "$T/mux.log"
assert_grep 'class=http .*host="other\.test".*path="/api/v1".*route=by-path backend=web-api' "$T/mux.log"
assert_grep 'class=http .*host="other\.test".*route=http backend=web-def' "$T/mux.log"
assert_grep 'client=127\.0\.0\.1:[0-9]+ listener=main class=http' "$T/mux.log"
assert_grep 'bytes_in=[1-9][0-9]* bytes_out=[1-9][0-9]* dur=' "$T/mux.log"
stop_mux mux
