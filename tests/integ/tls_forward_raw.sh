#!/usr/bin/env bash
# Terminate, then forward anything: a binary protocol that no probe recognises, inside
# TLS that mux443 terminates, reaches an echo backend byte-exact both ways, with
# half-close (the client's close_notify + FIN become the backend's EOF; the echo's FIN
# becomes the client's close_notify).
#   - [route blob] tls = terminate, sni = blob.test: what is inside goes to its backend
#     (class tls-unknown), unless a class rule takes it: HTTP inside still goes to web;
#   - [route] tls_default: the same for every other terminated name (other.test);
#   - [route pass] tls = passthrough, sni = sni.test (openssl's captured hello): relayed untouched (the backend
#     sees the ClientHello);
#   - -t refuses a terminate rule after a passthrough rule for the same SNI, and a rule
#     an earlier catch-all makes unreachable.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" srv ec ca blob.test blob.test other.test

PM=$(free_port)
PE=$(free_port)
PD=$(free_port)
PW=$(free_port)
PP=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg dflt "$PY" "$PEERS/tcp_echo.py" dflt "$PD"
start_bg web "$PY" "$PEERS/http_server.py" web "$PW"
start_bg pass "$PY" "$PEERS/tcp_echo.py" pass "$PP" --mode hash
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/srv.crt
key = $P/srv.key

[backend echo]
server = 127.0.0.1:$PE
[backend dflt]
server = 127.0.0.1:$PD
[backend web]
server = 127.0.0.1:$PW
[backend pass]
server = 127.0.0.1:$PP

[route pass]
sni = sni.test
tls = passthrough
backend = pass

[route blob]
sni = blob.test
tls = terminate
backend = echo

[route]
http = web
tls_default = dflt
INI
for p in echo dflt web pass; do wait_ready "$p"; done
"$MUX443" -t -c "$T/mux.ini" >"$T/t.out" 2>&1 || fail "-t refused the config: $(cat "$T/t.out")"
start_mux mux "$T/mux.ini"

head -c 3000000 /dev/urandom >"$T/blob"
want=$(sha256sum <"$T/blob" | cut -d' ' -f1)

log "1. binary inside TLS for blob.test: echoed byte-exact, half-close both ways"
"$PY" "$PEERS/tls_raw_client.py" 127.0.0.1 "$PM" --sni blob.test --ca "$P/ca.crt" \
    --file "$T/blob" >"$T/c1.out" 2>&1 || fail "client: $(cat "$T/c1.out")"
assert_grep "^got=3000000 sha256=$want" "$T/c1.out" "the echo came back whole"
assert_grep '^end=close_notify' "$T/c1.out" "the backend's FIN reached the client as close_notify"
wait_log echo "eof in=3000000 in_sha256=$want"
wait_close mux 'route=blob'
assert_grep 'class=tls-unknown .*route=blob|route=blob.*class=tls-unknown' "$T/mux.log" \
    "logged as unrecognised inside TLS, routed by the terminate rule"

log "2. another terminated name goes to [route] tls_default"
"$PY" "$PEERS/tls_raw_client.py" 127.0.0.1 "$PM" --sni other.test --ca "$P/ca.crt" \
    --file "$T/blob" >"$T/c2.out" 2>&1 || fail "client: $(cat "$T/c2.out")"
assert_grep "^got=3000000 sha256=$want" "$T/c2.out" "tls_default echoed it"
wait_log dflt "eof in=3000000 in_sha256=$want"

log "3. HTTP inside blob.test still goes to the http class route"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$P/ca.crt" \
    --resolve "blob.test:$PM:127.0.0.1" "https://blob.test:$PM/x")
assert_eq 200 "$code" "https inside a terminate rule's TLS"
wait_log web 'method=GET path=/x'

log "4. tls = passthrough: the backend gets the ClientHello itself"
"$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --file "$VECTORS/openssl-s_client-clienthello.bin" \
    --shut-wr --timeout 10 >"$T/c4.out" 2>&1 || true
wait_log pass "eof in=314 in_sha256=$(sha256sum <"$VECTORS/openssl-s_client-clienthello.bin" | cut -d' ' -f1)"
stop_mux mux

log "5. -t explains conflicts"
cat >"$T/bad.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
[tls]
cert = $P/srv.crt
key = $P/srv.key
[backend echo]
server = 127.0.0.1:$PE
[route pass]
sni = blob.test
backend = echo
[route term]
sni = blob.test
tls = terminate
backend = echo
[route all]
class = http
backend = echo
[route api]
class = http
backend = echo
INI
if "$MUX443" -t -c "$T/bad.ini" >"$T/bad.out" 2>&1; then fail "-t accepted conflicting rules"; fi
assert_grep 'bad.ini:11: \[route term\] conflicts with \[route pass\] \(line 8\) for sni blob.test' \
    "$T/bad.out" "passthrough vs terminate for one SNI"
assert_grep 'bad.ini:18: \[route api\] is unreachable: \[route all\] \(line 15\)' "$T/bad.out" \
    "a rule shadowed by an earlier catch-all"
log "ok"
