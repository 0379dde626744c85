#!/usr/bin/env bash
# Certificates without giving up the one port (etc/recipes/acme.ini): an ACME client's
# TLS-ALPN-01 challenge goes through mux443. Real parts from Debian: pebble (the ACME
# test CA; pebble-challtestsrv answers its DNS queries with 127.0.0.1) validates
# site.test on mux443's port, where `[route acme] alpn = acme-tls/1` passes the
# handshake through to lego (`--tls --tls.port` on a loopback port behind mux443); the
# other TLS on that port is terminated by mux443 with its current certificate. lego's
# run hook installs the issued certificate and sends SIGHUP; a new client is then served
# the certificate pebble issued (issuer: Pebble's intermediate), while a WSS connection
# established through the old certificate keeps working across the reload.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

for tool in pebble pebble-challtestsrv lego openssl; do
    if ! command -v "$tool" >/dev/null; then
        log "SKIP: $tool is not installed (apt-get install pebble lego)"
        exit 77
    fi
done

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test localhost # before ACME: our own CA
tls_leaf "$P" pebble ec ca localhost localhost         # pebble's ACME API (HTTPS)
LIVE=$T/live
mkdir -p "$LIVE"
cp "$P/site.crt" "$LIVE/site.crt"
cp "$P/site.key" "$LIVE/site.key"

PM=$(free_port)       # mux443's one port: what pebble validates on ("443")
PLEGO=$(free_port)    # lego's TLS-ALPN-01 server, behind mux443
PACME=$(free_port)    # pebble's ACME API
PDNS=$(free_port)     # pebble-challtestsrv's DNS (site.test -> 127.0.0.1)
PCHMGMT=$(free_port)
PHTTP=$(free_port)
PWS=$(free_port)
cat >"$T/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$PACME", "certificate": "$P/pebble.crt",
  "privateKey": "$P/pebble.key", "httpPort": $PHTTP, "tlsPort": $PM,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
start_bg dns pebble-challtestsrv -dns01 "127.0.0.1:$PDNS" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$PCHMGMT"
wait_log dns 'Starting management server|DNS' 10
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 start_bg pebble \
    pebble -config "$T/pebble.json" -dnsserver "127.0.0.1:$PDNS"
wait_log pebble 'ACME directory available' 15
start_bg ws "$PY" "$PEERS/ws_echo.py" ws "$PWS"
wait_ready ws

cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $LIVE/site.crt
key = $LIVE/site.key

[backend acme]
server = 127.0.0.1:$PLEGO

[backend signalling]
server = 127.0.0.1:$PWS

[route acme]
alpn = acme-tls/1
backend = acme

[route]
websocket = signalling
INI
start_mux mux "$T/mux.ini"

log "a WSS connection through the current certificate, held open"
SSL_CERT_FILE=$P/ca.crt start_bg hold "$PY" "$PEERS/ws_client.py" "wss://localhost:$PM/ws" ping --hold
wait_ready hold
issuer_now() {
    openssl s_client -connect "127.0.0.1:$PM" -servername site.test </dev/null 2>/dev/null |
        openssl x509 -noout -issuer
}
assert_contains "$(issuer_now)" "mux443 test ca" "before ACME: our own certificate"

log "lego: TLS-ALPN-01 through mux443's port, then the hook installs and reloads"
cat >"$T/hook.sh" <<HOOK
#!/bin/sh
# lego's --run-hook: install the new certificate where mux443 reads it, then reload.
set -e
cp "\$LEGO_CERT_PATH" "$LIVE/site.crt.new"
cp "\$LEGO_CERT_KEY_PATH" "$LIVE/site.key.new"
mv "$LIVE/site.key.new" "$LIVE/site.key"
mv "$LIVE/site.crt.new" "$LIVE/site.crt"
kill -HUP $(pid_of mux)
HOOK
chmod +x "$T/hook.sh"
LEGO_CA_CERTIFICATES=$P/ca.crt timeout 120 lego --accept-tos --email acme@site.test \
    --server "https://localhost:$PACME/dir" --domains site.test --tls --tls.port "127.0.0.1:$PLEGO" \
    --path "$T/lego" run --run-hook "$T/hook.sh" >"$T/lego.log" 2>&1 ||
    fail "lego failed: $(tail -n 5 "$T/lego.log")"
assert_grep 'acme-tls/1|alpn="acme-tls/1"' "$T/mux.log" "the challenge went through mux443"
assert_grep 'route=acme backend=acme server=127\.0\.0\.1:'"$PLEGO" "$T/mux.log" \
    "the challenge was passed to lego"
wait_log mux 'reload: .* loaded' 10

new=$(issuer_now)
log "after the reload: $new"
assert_contains "$new" "Pebble Intermediate CA" "a new client gets the certificate pebble issued"
kill -USR1 "$(pid_of hold)"
wait_log hold 'hold: ping 1 (ok|FAILED)' 10
assert_grep 'hold: ping 1 ok' "$T/hold.log" "the WSS connection established before the reload"
stop hold
stop_mux mux
