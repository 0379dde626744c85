#!/usr/bin/env bash
# TLS termination with real clients: mux443 holds the certificate for term.test (signed
# by a per-test CA) and terminates; what comes out of the TLS is an HTTP request, routed
# by [route] http to the web backend, whose body names itself and the request.
#   openssl s_client with and without SNI, -tls1_2 / -tls1_3, ALPN lists http/1.1,
#   h2+http/1.1 (never h2: mux443 speaks HTTP/1.1 to backends), h2 alone (no ALPN),
#   stun.turn (selected because a stun route exists; the HTTP bytes still decide:
#   class https), an unknown protocol (no ALPN, the connection goes on);
#   a [route] for class http with alpn = x-special matches what the ClientHello offered
#   (web2), though mux443 selected http/1.1;
#   curl https:// --resolve --cacert; a TLS 1.1-only client is refused (protocol_version
#   alert, close line "TLS handshake failed"); every close line says class=https.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" term rsa ca term.test term.test www.term.test

PM=$(free_port)
PWEB=$(free_port)
PWEB2=$(free_port)
PTURN=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg web2 "$PY" "$PEERS/http_server.py" web2 "$PWEB2"
start_bg turn "$PY" "$PEERS/tcp_echo.py" turn "$PTURN"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
peek_timeout = 3

[tls]
cert = $P/term.crt
key = $P/term.key

[backend web]
server = 127.0.0.1:$PWEB

[backend web2]
server = 127.0.0.1:$PWEB2

[backend turn]
server = 127.0.0.1:$PTURN

[route alpn-web]
class = http
alpn = x-special
backend = web2

[route]
http = web
stun = turn
INI
wait_ready web
wait_ready web2
wait_ready turn
start_mux mux "$T/mux.ini"

# sc NAME PATH ARGS...: s_client through mux443, sending `GET /PATH` (Host term.test);
# the whole output in $T/sc-NAME.out.
sc() {
    local name=$1 path=$2
    shift 2
    printf 'GET /%s HTTP/1.0\r\nHost: term.test\r\n\r\n' "$path" |
        timeout 15 openssl s_client -connect "127.0.0.1:$PM" -ign_eof -CAfile "$P/ca.crt" \
            -verify_return_error "$@" >"$T/sc-$name.out" 2>&1 || true
}
# expect_ok NAME PATH VERSION ALPN: handshake verified, version, ALPN ("-" = none), and
# the backend's answer to this very request.
expect_ok() {
    local name=$1 path=$2 ver=$3 alpn=$4 out
    out=$(cat "$T/sc-$name.out")
    assert_contains "$out" "Verification: OK" "$name: certificate verified against the test CA"
    assert_contains "$out" "subject=CN = term.test" "$name: mux443's certificate"
    assert_contains "$out" "New, $ver, Cipher is" "$name: protocol version"
    if [[ $alpn == - ]]; then
        assert_contains "$out" "No ALPN negotiated" "$name: ALPN"
    else
        assert_contains "$out" "ALPN protocol: $alpn" "$name: ALPN"
    fi
    assert_contains "$out" "HTTP/1.0 200 OK" "$name: HTTP status through the TLS"
    assert_contains "$out" "web:web method=GET path=/$path host=term.test" "$name: web backend's body"
}

sc sni13 sni13 -servername term.test -verify_hostname term.test -tls1_3 -alpn http/1.1
expect_ok sni13 sni13 TLSv1.3 http/1.1
sc sni12 sni12 -servername www.term.test -verify_hostname www.term.test -tls1_2 -alpn http/1.1
expect_ok sni12 sni12 TLSv1.2 http/1.1
sc nosni nosni -noservername -verify_hostname term.test
expect_ok nosni nosni TLSv1.3 -
sc h2 h2 -servername term.test -alpn h2,http/1.1
expect_ok h2 h2 TLSv1.3 http/1.1
sc h2only h2only -servername term.test -alpn h2
expect_ok h2only h2only TLSv1.3 -
assert_not_grep 'ALPN protocol: h2' "$T/sc-h2.out" "h2 must never be selected"
sc turnalpn turnalpn -servername term.test -tls1_2 -alpn stun.turn
expect_ok turnalpn turnalpn TLSv1.2 stun.turn
sc unknown unknown -servername term.test -alpn x-unknown-proto
expect_ok unknown unknown TLSv1.3 -

# The route's alpn criterion sees the protocols the ClientHello offered.
sc special special -servername term.test -alpn x-special,http/1.1
assert_contains "$(cat "$T/sc-special.out")" "ALPN protocol: http/1.1" "special: ALPN"
assert_grep '^web:web2 method=GET path=/special ' "$T/sc-special.out" "alpn = x-special route: web2"

# curl: verifies the chain and the name, HTTP/1.1 over the ALPN it negotiated.
rc=0
curl -sS -v --max-time 15 --cacert "$P/ca.crt" --resolve "term.test:$PM:127.0.0.1" \
    "https://term.test:$PM/curl" >"$T/curl.out" 2>"$T/curl.err" || rc=$?
assert_eq 0 "$rc" "curl exit status ($(cat "$T/curl.err"))"
assert_grep "^web:web method=GET path=/curl host=term\.test:$PM " "$T/curl.out" "curl: web backend's body"
assert_grep 'ALPN.*(server accepted|accepted to use) http/1\.1' "$T/curl.err" "curl: ALPN"
assert_grep 'SSL certificate verify ok' "$T/curl.err" "curl: certificate verified"

# A TLS 1.1-only client (OpenSSL's own floor lowered so that it does send the hello).
printf 'GET /tls11 HTTP/1.0\r\n\r\n' |
    OPENSSL_CONF=/dev/null timeout 15 openssl s_client -connect "127.0.0.1:$PM" \
        -servername tls11.term.test -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' >"$T/sc-tls11.out" 2>&1 || true
assert_grep 'alert protocol version|no protocols available' "$T/sc-tls11.out" "TLS 1.1 client refused"
assert_not_grep 'New, TLSv1(\.1)?, Cipher is [A-Z]' "$T/sc-tls11.out" "TLS 1.1 handshake must not complete"
assert_grep 'alert protocol version' "$T/sc-tls11.out" "TLS 1.1 hello reached mux443 and got protocol_version"
wait_close mux 'sni="tls11\.term\.test"'
assert_grep 'class=tls sni="tls11\.term\.test" .*route=- backend=- .*reason="TLS handshake failed: [^"]*protocol' "$T/mux.log"
assert_not_grep 'path="/tls11"' "$T/mux.log"
assert_not_grep 'path=/tls11 ' "$T/web.log" "the TLS 1.1 client's request reached the backend"

# Close lines: every terminated request is class https, routed to web.
wait_count mux 'class=https .*route=http backend=web .*reason="done"' 8
assert_grep 'class=https sni="term\.test" alpn="http/1\.1" host="term\.test" path="/sni13" route=http backend=web server=127\.0\.0\.1:'"$PWEB" "$T/mux.log"
assert_grep 'class=https sni="www\.term\.test" alpn="http/1\.1" host="term\.test" path="/sni12" route=http backend=web' "$T/mux.log"
assert_grep 'class=https host="term\.test" path="/nosni" route=http backend=web' "$T/mux.log"
assert_grep 'class=https sni="term\.test" alpn="stun\.turn" host="term\.test" path="/turnalpn" route=http backend=web' "$T/mux.log"
assert_grep 'class=https sni="term\.test" alpn="h2,http/1\.1" host="term\.test" path="/curl" route=http backend=web' "$T/mux.log"
assert_grep 'class=https sni="term\.test" alpn="x-special,http/1\.1" host="term\.test" path="/special" route=alpn-web backend=web2 .*reason="done"' "$T/mux.log"
assert_not_grep 'class=(stun|turns|tls-unknown)' "$T/mux.log" "an HTTP request inside TLS must be class https"
assert_eq 0 "$(count_log turn 'open')" "connections that reached the turn backend"
stop_mux mux
