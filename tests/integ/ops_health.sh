#!/usr/bin/env bash
# Active health checks.
#  1. health = http on a pool of two HTTP servers (interval 200ms, rise 2, fall 2):
#     traffic goes to both; one is killed (by pid) -> "out of service" in the log,
#     mux443_backend_server_up 0, and every request goes to the other without a failed
#     connect; it is restarted on the same port -> "back in service" and traffic returns
#     to both; both killed -> a client is closed with "all 2 servers are out of service
#     (health checks)".
#  2. health = stun against REAL coturns: one on its plain TCP listener, one on its
#     --tcp-proxy-port with proxy_protocol = v2 (the check then starts with a PROXY v2
#     LOCAL header). mux443 starts before coturn, so both servers first go out of
#     service, then come back once coturn answers the Binding requests: up in /routes
#     and mux443_backend_server_up 1. A STUN check against a TCP echo server (it echoes
#     the request, no response) keeps that server out of service. coturn stopped -> 0.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
P1=$(free_port)
P2=$(free_port)

cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA

[backend web]
server = 127.0.0.1:$P1, 127.0.0.1:$P2
health = http
health_path = /hc
health_interval = 200ms
health_timeout = 500ms
health_rise = 2
health_fall = 2

[route]
http = web
INI
start_bg a "$PY" "$PEERS/http_server.py" a "$P1"
start_bg b "$PY" "$PEERS/http_server.py" b "$P2"
wait_ready a
wait_ready b
start_mux mux "$T/mux.ini"
UP1="mux443_backend_server_up{backend=\"web\",server=\"127.0.0.1:$P1\"}"
UP2="mux443_backend_server_up{backend=\"web\",server=\"127.0.0.1:$P2\"}"

# The checks really run: both servers log GET /hc from mux443.
wait_log a 'method=GET path=/hc ' 5
wait_log b 'method=GET path=/hc ' 5

# burst TAG N: N requests through mux443; prints how many each server answered ("a b").
burst() {
    local tag=$1 n=$2 i body na=0 nb=0
    for ((i = 0; i < n; i++)); do
        body=$(http_body "$PM" "/$tag-$i")
        case $body in
        web:a\ *) na=$((na + 1)) ;;
        web:b\ *) nb=$((nb + 1)) ;;
        *) fail "request /$tag-$i got no answer from the pool (body: '$body')" ;;
        esac
    done
    echo "$na $nb"
}

log "1a. both servers in service"
read -r na nb < <(burst both 10)
((na > 0 && nb > 0)) || fail "round robin over two healthy servers: a=$na b=$nb"

log "1b. server a killed"
stop a
wait_log mux "backend web server 127\\.0\\.0\\.1:$P1: health check failed 2 times .*out of service" 10
wait_metric "$PA" "$UP1" -eq 0 5
metrics "$PA" "$T/m1.prom"
assert_eq 1 "$(mval "$T/m1.prom" "$UP2")" "server b up"
fails_before=$(mval "$T/m1.prom" "mux443_backend_connect_failures_total{backend=\"web\",server=\"127.0.0.1:$P1\"}")
read -r na nb < <(burst onlyb 10)
assert_eq "0 10" "$na $nb" "requests while a is out of service (a b)"
metrics "$PA" "$T/m2.prom"
assert_eq "$fails_before" \
    "$(mval "$T/m2.prom" "mux443_backend_connect_failures_total{backend=\"web\",server=\"127.0.0.1:$P1\"}")" \
    "connects tried to the out-of-service server"
[[ $(admin_get "$PA" /routes "$T/routes1.json") == 200 ]] || fail "/routes"
"$PY" - "$T/routes1.json" "$P1" "$P2" <<'PYEOF' || fail "/routes while a is down: $(cat "$T/routes1.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
(web,) = [b for b in doc["backends"] if b["name"] == "web"]
up = {s["address"]: s["up"] for s in web["servers"]}
assert up == {f"127.0.0.1:{sys.argv[2]}": False, f"127.0.0.1:{sys.argv[3]}": True}, up
PYEOF

log "1c. server a restarted"
start_bg a2 "$PY" "$PEERS/http_server.py" a "$P1"
wait_ready a2
wait_log mux "backend web server 127\\.0\\.0\\.1:$P1: health check passing again: back in service" 10
wait_metric "$PA" "$UP1" -eq 1 5
read -r na nb < <(burst back 10)
((na > 0 && nb > 0)) || fail "traffic did not return to both servers: a=$na b=$nb"

log "1d. both servers down"
stop a2
stop b
wait_metric "$PA" "$UP1" -eq 0 10
wait_metric "$PA" "$UP2" -eq 0 10
client 127.0.0.1 "$PM" --data 'GET /none HTTP/1.0\r\n\r\n' --timeout 5 >"$T/none.out" 2>"$T/none.err" || true
assert_grep 'end=(eof|reset)' "$T/none.err" "client closed when the whole pool is out of service"
wait_close mux 'path="/none"' 5
assert_grep 'path="/none".*reason="backend web: all 2 servers are out of service \(health checks\)"' \
    "$T/mux.log" "close reason with every server out of service"
stop_mux mux

if ! command -v turnserver >/dev/null; then
    log "SKIP part 2: coturn is not installed"
    exit 77
fi
log "2. health = stun against coturn"
PT=$(free_port)
PP=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo
cat >"$T/mux2.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1
admin = 127.0.0.1:$PA

[backend turnplain]
server = 127.0.0.1:$PT
health = stun
health_interval = 200ms
health_timeout = 500ms
health_rise = 2
health_fall = 2

[backend turnproxy]
server = 127.0.0.1:$PP
proxy_protocol = v2
health = stun
health_interval = 200ms
health_timeout = 500ms
health_rise = 2
health_fall = 2

[backend notstun]
server = 127.0.0.1:$PE
health = stun
health_interval = 200ms
health_timeout = 500ms
health_rise = 2
health_fall = 2

[route]
stun = turnproxy
default = notstun
INI
start_mux mux2 "$T/mux2.ini"
TUP="mux443_backend_server_up{backend=\"turnplain\",server=\"127.0.0.1:$PT\"}"
PUP="mux443_backend_server_up{backend=\"turnproxy\",server=\"127.0.0.1:$PP\"}"
EUP="mux443_backend_server_up{backend=\"notstun\",server=\"127.0.0.1:$PE\"}"
# Nothing listens on the coturn ports yet, and the echo server is no STUN server.
wait_metric "$PA" "$TUP" -eq 0 10
wait_metric "$PA" "$PUP" -eq 0 10
wait_metric "$PA" "$EUP" -eq 0 10
assert_grep "backend notstun server 127\\.0\\.0\\.1:$PE: health check failed 2 times \\(not a STUN Binding response\\)" \
    "$T/mux2.log" "STUN check against an echo server"

# coturn opens no plain TCP listener when --tcp-proxy-port is set: one coturn for each.
start_turn() { # NAME PORT-OPTIONS...
    local name=$1 minp=$((49152 + RANDOM % 16000))
    shift
    start_bg "$name" turnserver -n --listening-ip=127.0.0.1 "$@" --relay-ip=127.0.0.1 \
        --min-port="$minp" --max-port=$((minp + 50)) --lt-cred-mech --user=test:secret \
        --realm=mux443.test --no-tls --no-dtls --no-cli --allow-loopback-peers \
        --log-file=stdout --simple-log --verbose --pidfile="$T/$name.pid" --db="$T/$name.db"
}
start_turn turnp --listening-port="$PT"
start_turn turn --listening-port="$(free_port)" --tcp-proxy-port="$PP"
wait_log turn "TCP listener opened on : 127.0.0.1:$PP" 20
wait_log mux2 "backend turnplain server 127\\.0\\.0\\.1:$PT: health check passing again: back in service" 10
wait_log mux2 "backend turnproxy server 127\\.0\\.0\\.1:$PP: health check passing again: back in service" 10
wait_metric "$PA" "$TUP" -eq 1 5
wait_metric "$PA" "$PUP" -eq 1 5
[[ $(admin_get "$PA" /routes "$T/routes2.json") == 200 ]] || fail "/routes"
"$PY" - "$T/routes2.json" "$PT" "$PP" "$PE" <<'PYEOF' || fail "/routes with coturn up: $(cat "$T/routes2.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
up = {b["name"]: [s["up"] for s in b["servers"]] for b in doc["backends"]}
assert up == {"turnplain": [True], "turnproxy": [True], "notstun": [False]}, up
PYEOF
# The echo server stays out: it answered every check with our own request.
metrics "$PA" "$T/m3.prom"
assert_eq 0 "$(mval "$T/m3.prom" "$EUP")" "STUN-checked echo server"

stop turn
stop turnp
wait_log mux2 "backend turnplain server 127\\.0\\.0\\.1:$PT: health check failed 2 times .*out of service" 10
wait_metric "$PA" "$TUP" -eq 0 10
wait_metric "$PA" "$PUP" -eq 0 10
[[ $(admin_get "$PA" /routes "$T/routes3.json") == 200 ]] || fail "/routes"
grep -q '"up":true' "$T/routes3.json" && fail "/routes shows a server up with coturn stopped: $(cat "$T/routes3.json")"
stop_mux mux2
