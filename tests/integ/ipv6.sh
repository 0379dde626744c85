#!/usr/bin/env bash
# IPv6: mux443 listens on [::1] (and 127.0.0.1), the backend is on [::1]; curl -g
# through the IPv6 listener reaches it and the close log shows the IPv6 client.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

if ! "$PY" -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    log "SKIP: no ::1 on this machine"
    exit 77
fi
PM=$(free_port ::1)
PW=$(free_port ::1)
P4=$(free_port)
start_bg web6 "$PY" "$PEERS/http_server.py" six "$PW" --bind ::1 --proxy
cat >"$T/mux.ini" <<INI
[mux443]
listen = [::1]:$PM, 127.0.0.1:$P4
workers = 1

[backend web6]
server = [::1]:$PW
proxy_protocol = v1

[route]
http = web6
INI
wait_ready web6
"$MUX443" -t -c "$T/mux.ini" || fail "mux443 -t rejects an IPv6 config"
start_mux mux "$T/mux.ini"

out=$(curl -sS -g --max-time 10 "http://[::1]:$PM/v6")
assert_contains "$out" "web:six method=GET path=/v6 host=[::1]:$PM" "curl -g over IPv6"
assert_contains "$out" 'proxy="v1 src=[::1]:' "PROXY v1 TCP6 header to an IPv6 backend"
out=$(curl -sS --max-time 10 "http://127.0.0.1:$P4/v4")
assert_contains "$out" "web:six method=GET path=/v4" "IPv4 listener to an IPv6 backend"
# A v4 client and a v6 backend: the header must still be valid (v1 UNKNOWN or TCP4).
assert_not_contains "$out" 'proxy="bad' "PROXY header from a v4 client to a v6 backend"
wait_count mux 'conn=[0-9]+ .*reason=' 2
assert_grep 'client=\[::1\]:[0-9]+ .*class=http .*backend=web6 server=\[::1\]:'"$PW" "$T/mux.log"
stop_mux mux
