#!/usr/bin/env bash
# Passthrough and termination on one port. [route pass] sni = pass.test, both.test sends
# the untouched ClientHello to an `openssl s_server -www` backend with its own
# (self-signed) certificate; [tls term] holds a certificate for term.test and both.test
# and is not a default. Then:
#   -servername pass.test: the backend's certificate and its -www page (passthrough);
#   -servername both.test: passthrough too: a matching [route] comes before any
#     certificate, even one that covers the name;
#   -servername term.test: mux443's certificate, the HTTP inside reaches the web backend;
#   -servername other.test and no SNI at all: no certificate covers them, no [route] tls
#     or default: closed before any handshake, the reason logged.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" term ec ca term.test term.test both.test
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=backend-pass.test" -keyout "$P/pass.key" -out "$P/pass.crt" 2>/dev/null

PM=$(free_port)
PPASS=$(free_port)
PWEB=$(free_port)
start_bg pass openssl s_server -accept "127.0.0.1:$PPASS" -cert "$P/pass.crt" -key "$P/pass.key" -www
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls term]
cert = $P/term.crt
key = $P/term.key

[backend pass]
server = 127.0.0.1:$PPASS

[backend web]
server = 127.0.0.1:$PWEB

[route pass]
sni = pass.test, both.test
backend = pass

[route]
http = web
INI
wait_log pass 'ACCEPT' 10
wait_ready web
start_mux mux "$T/mux.ini"

# sc NAME ARGS...: s_client through mux443 sending `GET /NAME`; output in $T/sc-NAME.out.
sc() {
    local name=$1
    shift
    printf 'GET /%s HTTP/1.0\r\nHost: h.test\r\n\r\n' "$name" |
        timeout 15 openssl s_client -connect "127.0.0.1:$PM" -ign_eof "$@" >"$T/sc-$name.out" 2>&1 || true
}
subject() { openssl x509 -noout -subject -nameopt multiline <"$T/sc-$1.out" 2>/dev/null | sed -n 's/^ *commonName *= *//p'; }

sc pass -servername pass.test
assert_eq backend-pass.test "$(subject pass)" "SNI pass.test: the backend's own certificate"
assert_grep 'HTTP/1\.0 200 ok' "$T/sc-pass.out" "SNI pass.test: the s_server -www page"
sc both -servername both.test
assert_eq backend-pass.test "$(subject both)" "SNI both.test: passthrough before the certificate that covers it"
assert_grep 'HTTP/1\.0 200 ok' "$T/sc-both.out" "SNI both.test: the s_server -www page"
sc term -servername term.test -CAfile "$P/ca.crt" -verify_hostname term.test -verify_return_error
assert_eq term.test "$(subject term)" "SNI term.test: mux443's certificate"
assert_grep 'Verification: OK' "$T/sc-term.out" "SNI term.test: certificate verified"
assert_grep '^web:web method=GET path=/term host=h\.test ' "$T/sc-term.out" "SNI term.test: web backend"
assert_not_grep 'HTTP/1\.0 200 ok' "$T/sc-term.out" "SNI term.test reached the passthrough backend"

sc other -servername other.test
assert_eq "" "$(subject other)" "SNI other.test: no certificate at all"
assert_not_grep 'web:web|200 ok' "$T/sc-other.out" "SNI other.test got an answer"
sc nosni -noservername
assert_eq "" "$(subject nosni)" "no SNI: no certificate at all"
assert_not_grep 'web:web|200 ok' "$T/sc-nosni.out" "no SNI got an answer"

wait_count mux 'conn=[0-9]+ .*reason=' 5
assert_grep 'class=tls sni="pass\.test" route=pass backend=pass server=127\.0\.0\.1:'"$PPASS"' .*reason="done"' "$T/mux.log"
assert_grep 'class=tls sni="both\.test" route=pass backend=pass server=127\.0\.0\.1:'"$PPASS"' .*reason="done"' "$T/mux.log"
assert_grep 'class=https sni="term\.test" host="h\.test" path="/term" route=http backend=web .*reason="done"' "$T/mux.log"
assert_grep 'class=tls sni="other\.test" route=- backend=- server=- .*reason="no certificate for this SNI and no \[route\] tls or default"' "$T/mux.log"
assert_grep 'client=127\.0\.0\.1:[0-9]+ listener=main class=tls route=- backend=- server=- .*reason="no certificate for this SNI and no \[route\] tls or default"' "$T/mux.log"
assert_not_grep 'class=https .*(sni="(pass|both)\.test")' "$T/mux.log" "a passthrough name was terminated"
stop_mux mux
