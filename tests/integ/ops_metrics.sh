#!/usr/bin/env bash
# The admin listener: /healthz answers 200 once mux443 is ready; /metrics parses strictly
# (promtool check metrics when installed, and tests/peers/ops_promcheck.py always) before
# and after traffic, and its counters move with the traffic driven through mux443:
# connections by class (http, https, websocket, stun, ice-tcp, unknown, timeout), route
# connections and bytes both ways, detection outcomes (matched, unknown, timeout),
# TLS handshakes and handshake failures, backend connects; /routes is JSON listing the
# routes and backends of the running configuration; an unknown path is 404.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test

PM=$(free_port)
PA=$(free_port)
PWEB=$(free_port)
PWS=$(free_port)
PECHO=$(free_port)
PICE=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg ws "$PY" "$PEERS/ws_echo.py" ws "$PWS"
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PECHO"
start_bg ice "$PY" "$PEERS/ice_tcp.py" ice "$PICE"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA
peek_timeout = 500ms

[tls]
cert = $P/site.crt
key = $P/site.key

[backend web]
server = 127.0.0.1:$PWEB

[backend signalling]
server = 127.0.0.1:$PWS

[backend turn]
server = 127.0.0.1:$PECHO

[backend media]
server = 127.0.0.1:$PICE

[route]
websocket = signalling
stun = turn
ice-tcp = media
http = web
INI
for p in web ws echo ice; do wait_ready $p; done

# Strict parse of one /metrics document: promtool (if present) and our checker.
check_metrics() {
    local f=$1 out
    "$PY" "$PEERS/ops_promcheck.py" "$f" >"$f.check" 2>&1 ||
        fail "/metrics does not parse strictly ($f): $(head -20 "$f.check")"
    if command -v promtool >/dev/null; then
        # promtool prints lint advice on stderr but exits non-zero only on parse errors
        # or lint problems; both are failures here.
        out=$(promtool check metrics <"$f" 2>&1) || fail "promtool check metrics: $out"
    fi
}

start_mux mux "$T/mux.ini"
# Readiness: /healthz polled until 200.
deadline=$((SECONDS + 10))
until [[ $(admin_get "$PA" /healthz "$T/healthz") == 200 ]]; do
    ((SECONDS < deadline)) || fail "/healthz never answered 200"
    sleep 0.05
done
assert_eq "ok" "$(cat "$T/healthz")" "/healthz body"
[[ $(admin_get "$PA" /nope "$T/nope") == 404 ]] || fail "/nope is not 404"
command -v promtool >/dev/null || log "promtool not installed: ops_promcheck.py only"

metrics "$PA" "$T/m0.prom"
check_metrics "$T/m0.prom"
for s in 'mux443_connections_total{class="http"}' 'mux443_connections_total{class="https"}' \
    'mux443_connections_total{class="websocket"}' 'mux443_connections_total{class="stun"}' \
    'mux443_connections_total{class="ice-tcp"}' 'mux443_connections_total{class="unknown"}' \
    'mux443_connections_total{class="timeout"}' 'mux443_detection_total{outcome="matched"}' \
    'mux443_detection_total{outcome="unknown"}' 'mux443_detection_total{outcome="timeout"}' \
    'mux443_tls_handshakes_total'; do
    assert_eq 0 "$(mval "$T/m0.prom" "$s")" "$s before any traffic"
done

log "driving traffic: http, https, websocket, stun, ice-tcp, unknown, silent, bad TLS"
body=$(http_body "$PM" /plain)
assert_contains "$body" "web:web method=GET path=/plain" "plain HTTP through mux443"
body=$(curl -s --max-time 5 --cacert "$P/ca.crt" --resolve "site.test:$PM:127.0.0.1" \
    "https://site.test:$PM/tls" || true)
assert_contains "$body" "web:web method=GET path=/tls" "HTTPS through mux443"
out=$("$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/sig" hello 2>&1 || true)
assert_contains "$out" "ws:ws echo=hello" "WebSocket through mux443"
# A STUN Binding request (20-byte header, no attributes) to the echo backend.
stun='\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl'
client 127.0.0.1 "$PM" --data "$stun" --shut-wr --hex >"$T/stun.out" 2>"$T/stun.err"
assert_eq "000100002112a442$(printf abcdefghijkl | od -An -tx1 | tr -d ' \n')" \
    "$(cat "$T/stun.out")" "STUN bytes echoed through the stun route"
client 127.0.0.1 "$PM" --ice-binding srv1:cli1 --frame >"$T/ice.out" 2>"$T/ice.err"
assert_grep 'type=0x0101 .*txid-match=yes' "$T/ice.out" "ICE-TCP Binding answered"
client 127.0.0.1 "$PM" --data '\xff\xfegarbage\r\n' --timeout 3 >/dev/null 2>"$T/unknown.err"
assert_grep 'end=(eof|reset)' "$T/unknown.err" "unrecognised bytes are closed"
client 127.0.0.1 "$PM" --delay 3 --timeout 3 >/dev/null 2>"$T/silent.err" || true
# A TLS ClientHello followed by bytes that are no TLS record: a failed handshake.
{
    cat "$VECTORS/openssl-s_client-clienthello.bin"
    printf 'this is not a TLS record at all\r\n'
} >"$T/badtls.bin"
client 127.0.0.1 "$PM" --file "$T/badtls.bin" --timeout 3 >/dev/null 2>"$T/badtls.err" || true
wait_log mux 'reason="TLS handshake failed' 5
wait_log mux 'class=timeout .*reason="peek timeout' 5
wait_log mux 'class=unknown .*reason="unrecognised protocol' 5

# Close lines are logged before the counters the test reads are final: poll.
wait_metric "$PA" 'mux443_connections_total{class="timeout"}' -eq 1
metrics "$PA" "$T/m1.prom"
check_metrics "$T/m1.prom"
expect() { # SERIES EXPECTED
    assert_eq "$2" "$(mval "$T/m1.prom" "$1")" "$1 after the traffic"
}
expect 'mux443_connections_total{class="http"}' 1
expect 'mux443_connections_total{class="https"}' 1
expect 'mux443_connections_total{class="websocket"}' 1
expect 'mux443_connections_total{class="stun"}' 1
expect 'mux443_connections_total{class="ice-tcp"}' 1
expect 'mux443_connections_total{class="unknown"}' 1
expect 'mux443_connections_total{class="timeout"}' 1
expect 'mux443_detection_total{outcome="matched"}' 5
expect 'mux443_detection_total{outcome="unknown"}' 1
expect 'mux443_detection_total{outcome="timeout"}' 1
expect 'mux443_tls_handshakes_total' 1
expect 'mux443_tls_handshake_failures_total{reason="other"}' 1
expect 'mux443_connections_accepted_total' 8
expect "mux443_backend_connects_total{backend=\"web\",server=\"127.0.0.1:$PWEB\"}" 2
expect "mux443_backend_connects_total{backend=\"turn\",server=\"127.0.0.1:$PECHO\"}" 1
expect "mux443_backend_server_up{backend=\"web\",server=\"127.0.0.1:$PWEB\"}" 1
for c in http https websocket stun ice-tcp unknown timeout; do
    expect "mux443_connections_open{class=\"$c\"}" 0
done
# Route counters: every relayed connection counted on its route, bytes both ways.
total_route_conns=$(awk '/^mux443_route_connections_total\{/ { s += $2 } END { print s + 0 }' "$T/m1.prom")
assert_eq 5 "$total_route_conns" "sum of mux443_route_connections_total"
ones=$(grep -cE '^mux443_route_connections_total\{route="[^"]+"\} 1$' "$T/m1.prom" || true)
((ones >= 3)) || fail "expected the stun, websocket and ice-tcp routes at 1 connection each"
bytes_in=$(awk '/^mux443_route_bytes_total\{.*direction="in"/ { s += $2 } END { print s + 0 }' "$T/m1.prom")
bytes_out=$(awk '/^mux443_route_bytes_total\{.*direction="out"/ { s += $2 } END { print s + 0 }' "$T/m1.prom")
((bytes_in > 0 && bytes_out > 0)) || fail "route bytes did not move: in=$bytes_in out=$bytes_out"
# The stun route relayed exactly the 20 bytes each way.
stun_route_name=$(grep -oE 'route=[^ ]+' <<<"$(close_lines mux 'class=stun')" | head -1 | cut -d= -f2)
[[ -n $stun_route_name ]] || fail "no close line for the stun connection"
assert_eq 20 "$(mval "$T/m1.prom" "mux443_route_bytes_total{route=\"$stun_route_name\",direction=\"in\"}")" \
    "bytes in on route $stun_route_name"
assert_eq 20 "$(mval "$T/m1.prom" "mux443_route_bytes_total{route=\"$stun_route_name\",direction=\"out\"}")" \
    "bytes out on route $stun_route_name"

log "/routes"
[[ $(admin_get "$PA" /routes "$T/routes.json") == 200 ]] || fail "/routes is not 200"
"$PY" - "$T/routes.json" "$PWEB" "$PWS" "$PECHO" "$PICE" <<'PYEOF' || fail "/routes: $(cat "$T/routes.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
pweb, pws, pecho, pice = sys.argv[2:]
backends = {b["name"]: b for b in doc["backends"]}
want = {"web": pweb, "signalling": pws, "turn": pecho, "media": pice}
assert set(backends) == set(want), f"backends {sorted(backends)}"
for name, port in want.items():
    servers = backends[name]["servers"]
    assert [s["address"] for s in servers] == [f"127.0.0.1:{port}"], servers
    assert all(s["up"] is True for s in servers), servers
routes = doc["routes"]
by_backend = {}
for r in routes:
    assert isinstance(r["name"], str) and r["name"], r
    assert r["backend"] in backends, r
    by_backend.setdefault(r["backend"], set()).update(r["classes"])
assert by_backend == {"web": {"http"}, "signalling": {"websocket"}, "turn": {"stun"},
                      "media": {"ice-tcp"}}, by_backend
assert doc["config"].endswith("mux.ini"), doc["config"]
PYEOF

log "/healthz during the drain"
start_bg hold "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data "$stun" --hold
wait_ready hold
kill -TERM "$(pid_of mux)"
wait_log mux 'draining' 5
code=$(admin_get "$PA" /healthz "$T/healthz2")
assert_eq 503 "$code" "/healthz while draining (no longer ready)"
stop hold
wait_exit mux 10
assert_eq 0 "$STOP_RC" "mux443 exit status after the drain"
assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/mux.log"
