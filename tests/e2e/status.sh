#!/usr/bin/env bash
# The admin listener's status page in real headless Chromium (Debian's chromium, driven
# by playwright-core: status.mjs). mux443 runs with an HTTP backend (health-checked), a
# terminated [tls] certificate, and has seen HTTP and HTTPS connections, a failed and a
# successful reload, and holds two WebSocket connections open. The page (GET /status, same origin, no query) must load, make no
# request beyond the admin listener's origin, and show the numbers /metrics shows at the
# same moment: connections by class, accepted, the route's connections, the server's
# health and last check, the certificate's names and the reload counts. A screenshot is
# written to the build tree (artifacts/status.png, next to the mux443 binary) and its
# path printed.
#
#   usage: status.sh PATH/TO/mux443          (ctest: e2e_status)
#
# Network: a namespace holding only lo, as browser.sh. Needs chromium, node, npm, curl,
# openssl, ip, unshare, flock, python3; exits 77 (skipped) when one is missing or no
# namespace can be made, unless E2E_REQUIRED=1.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# shellcheck source=tests/e2e/netns.sh
source "$E2E_DIR/netns.sh"
e2e_enter_netns status "$@" -- node npm curl openssl ip unshare flock

source "$E2E_DIR/../integ/lib.sh" "$@"
# shellcheck source=tests/e2e/driver.sh
source "$E2E_DIR/driver.sh"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test
PM=$(free_port)
PA=$(free_port)
PWEB=$(free_port)
PWS=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg ws "$PY" "$PEERS/ws_echo.py" ws "$PWS"
write_conf() {
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA

[tls]
cert = $P/site.crt
key = $P/site.key

[backend web]
server = 127.0.0.1:$PWEB
health = http
health_interval = 1s

[backend signalling]
server = 127.0.0.1:$PWS

[route]
http = web
websocket = signalling
$1
INI
}
write_conf ""
wait_ready web
wait_ready ws
start_mux mux "$T/mux.ini"

# wait_history SECONDS: until the status page's history holds that many samples (one a
# second), so that the traffic below shows in the sparklines.
wait_history() {
    local deadline=$((SECONDS + $1 + 10)) n
    while :; do
        admin_get "$PA" /status.json "$T/status.json" >/dev/null
        n=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["history"]["seconds"])' \
            "$T/status.json" 2>/dev/null || echo 0)
        ((n >= $1)) && return 0
        ((SECONDS < deadline)) || fail "status.json history stuck at $n samples"
        sleep 0.2
    done
}
wait_history 2

N=5
log "$N HTTP and 2 HTTPS connections, a failed reload, a good one"
for i in $(seq $N); do
    assert_contains "$(http_body "$PM" "/n$i")" "path=/n$i" "HTTP $i"
done
for i in 1 2; do
    body=$(curl -s --max-time 5 --cacert "$P/ca.crt" --resolve "site.test:$PM:127.0.0.1" \
        "https://site.test:$PM/s$i" || true)
    assert_contains "$body" "path=/s$i" "HTTPS $i"
done
write_conf "bogus_key = 1"
kill -HUP "$(pid_of mux)"
wait_metric "$PA" 'mux443_reloads_total{result="failed"}' -eq 1
write_conf ""
kill -HUP "$(pid_of mux)"
wait_metric "$PA" 'mux443_reloads_total{result="ok"}' -eq 1
wait_metric "$PA" 'mux443_connections_total{class="https"}' -eq 2
# Two WebSocket connections held open: the page shows them as open.
for i in 1 2; do
    start_bg "hold$i" "$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/ws$i" hello --hold
    wait_ready "hold$i"
done
wait_metric "$PA" 'mux443_connections_open{class="websocket"}' -eq 2
admin_get "$PA" /status.json "$T/status.json" >/dev/null
h=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["history"]["seconds"])' "$T/status.json")
wait_history $((h + 3))

mkdir -p "$(dirname "$MUX443")/artifacts"
SHOT=$(dirname "$MUX443")/artifacts/status.png
rm -f "$SHOT"
run_driver 90 status.mjs E2E_ADMIN="127.0.0.1:$PA" E2E_SHOT="$SHOT" E2E_HTTP_N="$N"
[[ -s $SHOT ]] || fail "no screenshot at $SHOT"
log "status page screenshot: $SHOT"
echo "status page screenshot: $SHOT"
stop hold1
stop hold2
stop_mux mux
