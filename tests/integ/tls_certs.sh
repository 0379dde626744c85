#!/usr/bin/env bash
# Certificate choice when mux443 terminates TLS, with several [tls NAME] sections:
#   the SNI picks the section whose certificate covers it (checked with s_client
#   -verify_hostname against the test CA, and the subject); *.w.test serves any name
#   under w.test but not w.test itself; an exact name beats a wildcard listed before it;
#   names match case-insensitively; clients without SNI, or with an SNI nothing
#   covers, get the section marked default = yes.
#   One section holds an RSA and an ECDSA certificate: an RSA-only client (TLS 1.2
#   ECDHE-RSA cipher; TLS 1.3 -sigalgs RSA-PSS+SHA256) gets the RSA one, an ECDSA-only
#   client (ECDHE-ECDSA cipher; -sigalgs ECDSA+SHA256) the ECDSA one.
#   Session resumption (TLS 1.3 and TLS 1.2 tickets): -sess_out then -sess_in is
#   "Reused", and the resumed connection still reaches the backend.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" a-rsa rsa ca a.test a.test
tls_leaf "$P" a-ec ec ca a.test a.test
tls_leaf "$P" b ec ca b.test b.test alt.b.test
tls_leaf "$P" wild ec ca wild.w.test '*.w.test'
tls_leaf "$P" x rsa ca x.w.test x.w.test
tls_leaf "$P" fallback ec ca fallback.test fallback.test

PM=$(free_port)
PWEB=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
# The wildcard section comes first: the exact x.w.test must still win.
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls wild]
cert = $P/wild.crt
key = $P/wild.key

[tls a]
cert = $P/a-rsa.crt, $P/a-ec.crt
key = $P/a-rsa.key, $P/a-ec.key

[tls b]
cert = $P/b.crt
key = $P/b.key

[tls x]
cert = $P/x.crt
key = $P/x.key

[tls fallback]
cert = $P/fallback.crt
key = $P/fallback.key
default = yes

[backend web]
server = 127.0.0.1:$PWEB

[route]
http = web
INI
wait_ready web
start_mux mux "$T/mux.ini"

N=0
# sc NAME ARGS...: s_client through mux443 sending `GET /NAME`; output in $T/sc-NAME.out.
sc() {
    local name=$1
    shift
    N=$((N + 1))
    printf 'GET /%s HTTP/1.0\r\nHost: h.test\r\n\r\n' "$name" |
        timeout 15 openssl s_client -connect "127.0.0.1:$PM" -ign_eof -CAfile "$P/ca.crt" \
            "$@" >"$T/sc-$name.out" 2>&1 || true
    assert_grep "^web:web method=GET path=/$name " "$T/sc-$name.out" "$name: the request reached the backend"
}
# subject NAME: the CN of the certificate the server sent.
subject() { openssl x509 -noout -subject -nameopt multiline <"$T/sc-$1.out" 2>/dev/null | sed -n 's/^ *commonName *= *//p'; }
# keyalg NAME: the public key algorithm of the certificate the server sent.
keyalg() { openssl x509 -noout -text <"$T/sc-$1.out" 2>/dev/null | sed -n 's/^ *Public Key Algorithm: *//p'; }
# expect_cert NAME SNI CN: SNI served the certificate with this CN, valid for SNI.
expect_cert() {
    local name=$1 sni=$2 cn=$3
    sc "$name" -servername "$sni" -verify_hostname "$sni" -verify_return_error
    assert_grep 'Verification: OK' "$T/sc-$name.out" "$name: certificate valid for '$sni'"
    assert_eq "$cn" "$(subject "$name")" "$name: SNI '$sni' served the certificate"
}

expect_cert exact-a a.test a.test
expect_cert exact-b b.test b.test
expect_cert san-b alt.b.test b.test
expect_cert case-b ALT.B.Test b.test
expect_cert wild-foo foo.w.test wild.w.test
expect_cert wild-bar bar.w.test wild.w.test
expect_cert exact-x x.w.test x.w.test # exact before the wildcard section listed first
# Not covered: the default section.
sc parent-w -servername w.test
assert_eq fallback.test "$(subject parent-w)" "w.test is not covered by *.w.test: default certificate"
sc unknown -servername nothing.test
assert_eq fallback.test "$(subject unknown)" "uncovered SNI: default certificate"
sc nosni -noservername -verify_hostname fallback.test -verify_return_error
assert_grep 'Verification: OK' "$T/sc-nosni.out" "no SNI: default certificate verified"
assert_eq fallback.test "$(subject nosni)" "no SNI: default certificate"

# RSA + ECDSA in one section: the client's algorithms decide.
sc rsa12 -servername a.test -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -verify_return_error
assert_eq rsaEncryption "$(keyalg rsa12)" "TLS 1.2 ECDHE-RSA client: certificate key"
assert_grep 'Cipher is ECDHE-RSA-AES128-GCM-SHA256' "$T/sc-rsa12.out" "TLS 1.2 ECDHE-RSA client: cipher"
sc ec12 -servername a.test -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -verify_return_error
assert_eq id-ecPublicKey "$(keyalg ec12)" "TLS 1.2 ECDHE-ECDSA client: certificate key"
assert_grep 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' "$T/sc-ec12.out" "TLS 1.2 ECDHE-ECDSA client: cipher"
sc rsa13 -servername a.test -tls1_3 -sigalgs RSA-PSS+SHA256 -verify_return_error
assert_eq rsaEncryption "$(keyalg rsa13)" "TLS 1.3 RSA-PSS-only client: certificate key"
assert_grep 'Peer signature type: RSA-PSS' "$T/sc-rsa13.out" "TLS 1.3 RSA-PSS-only client: signature"
sc ec13 -servername a.test -tls1_3 -sigalgs ECDSA+SHA256 -verify_return_error
assert_eq id-ecPublicKey "$(keyalg ec13)" "TLS 1.3 ECDSA-only client: certificate key"
assert_grep 'Peer signature type: ECDSA' "$T/sc-ec13.out" "TLS 1.3 ECDSA-only client: signature"
for n in rsa12 ec12 rsa13 ec13; do
    assert_eq a.test "$(subject "$n")" "$n: certificate subject"
done

# Session resumption by ticket.
for v in 1_3 1_2; do
    sc "new$v" -servername a.test "-tls$v" -sess_out "$T/sess$v.pem"
    assert_grep '^New, TLSv1\.[23]' "$T/sc-new$v.out" "TLS$v: first connection is a full handshake"
    [[ -s $T/sess$v.pem ]] || fail "TLS$v: s_client saved no session (no ticket from mux443?)"
    sc "again$v" -servername a.test "-tls$v" -sess_in "$T/sess$v.pem"
    assert_grep "^Reused, TLSv${v/_/.}" "$T/sc-again$v.out" "TLS$v: resumed session"
done

wait_count mux 'class=https .*route=http backend=web .*reason="done"' "$N"
assert_grep 'class=https sni="ALT\.B\.Test" host="h\.test" path="/case-b" route=http' "$T/mux.log"
assert_grep 'class=https sni="nothing\.test" host="h\.test" path="/unknown" route=http' "$T/mux.log"
assert_grep 'class=https host="h\.test" path="/nosni" route=http' "$T/mux.log"
assert_not_grep 'reason="[^"]*(fail|error)' "$T/mux.log"

# A ticket issued under one [tls] section must not resume a connection that another
# section serves (RFC 6066 section 3: with a different server_name the server MUST NOT
# resume; it does a full handshake): the a.test session offered with SNI b.test must
# give a full handshake with b.test's certificate.
for v in 1_2 1_3; do
    sc "cross$v" -servername b.test "-tls$v" -sess_in "$T/sess$v.pem"
    assert_not_grep '^Reused' "$T/sc-cross$v.out" \
        "TLS$v: a.test's ticket resumed a session for SNI b.test (another [tls] section)"
    assert_eq b.test "$(subject "cross$v")" "TLS$v: SNI b.test with a.test's ticket: certificate"
done
stop_mux mux
