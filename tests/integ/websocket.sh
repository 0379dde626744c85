#!/usr/bin/env bash
# WebSocket: a real python3-websockets client over ws:// through mux443 reaches the
# echo server; a plain HTTP GET on the same port and path goes to the web backend;
# Chromium's captured upgrade request gets the echo server's 101.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PW=$(free_port)
PS=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PW"
start_bg sig "$PY" "$PEERS/ws_echo.py" sig "$PS"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend web]
server = 127.0.0.1:$PW

[backend signalling]
server = 127.0.0.1:$PS

[route]
websocket = signalling
http = web
INI
wait_ready web
wait_ready sig
start_mux mux "$T/mux.ini"

out=$("$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/ws" "hello through mux443")
assert_eq "ws:sig echo=hello through mux443" "$out" "WebSocket echo"
out=$(curl -sS --max-time 10 "http://127.0.0.1:$PM/ws")
assert_contains "$out" "web:web method=GET path=/ws" "plain GET /ws goes to the web backend"

client 127.0.0.1 "$PM" --file "$VECTORS/chromium-websocket-upgrade.bin" --timeout 2 \
    >"$T/chromium.out" 2>"$T/chromium.err" || true
assert_grep '^HTTP/1\.1 101 ' "$T/chromium.out" "Chromium's upgrade request"

# A long-lived WebSocket: several messages over one relayed connection.
start_bg hold "$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/chat" ping --hold
wait_ready hold
for i in 1 2 3; do
    kill -USR1 "$(pid_of hold)"
    wait_log hold "hold: ping $i (ok|FAILED)"
done
assert_not_grep FAILED "$T/hold.log"
stop hold

wait_count mux 'conn=[0-9]+ .*reason=' 4
assert_grep 'class=websocket .*path="/ws".*route=websocket backend=signalling server=127\.0\.0\.1:'"$PS" "$T/mux.log"
assert_grep 'class=http .*path="/ws".*route=http backend=web' "$T/mux.log"
assert_grep 'class=websocket host="ws\.test".*backend=signalling' "$T/mux.log"
stop_mux mux
