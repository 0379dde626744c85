#!/usr/bin/env bash
# TLS policy of terminated connections.
#  1. Default TLS 1.2 suites (Mozilla intermediate: ECDHE + AEAD only), RSA and ECDSA
#     certificates: openssl s_client -tls1_2 -cipher AES128-SHA (RSA key exchange, CBC,
#     SHA-1) and ECDHE-ECDSA-AES128-SHA are refused and counted as
#     mux443_tls_handshake_failures_total{reason="no_shared_cipher"};
#     ECDHE-ECDSA-AES128-GCM-SHA256 is served; TLS 1.3 works with OpenSSL's defaults.
#  2. min_version = tls1.3: a TLS 1.2 client is refused (reason="protocol_version").
#  3. A client that ends its stream without close_notify (truncated TLS stream): logged
#     at info, counted in mux443_tls_truncated_total; the backend still gets its FIN,
#     and a reply the backend sends after that FIN still reaches the client, followed by
#     close_notify (a request, a bare FIN, then the answer of a backend that answers at
#     EOF: tcp_echo.py --mode hash).
#  4. -t checks ciphers / ciphersuites / min_version: FILE:LINE errors.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" term ec ca term.test term.test
tls_leaf "$P" termrsa rsa ca term.test term.test

PM=$(free_port)
PA=$(free_port)
PE=$(free_port)
PH=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg hash "$PY" "$PEERS/tcp_echo.py" hash "$PH" --mode hash
conf() { # EXTRA [tls] LINES, [STUN BACKEND]
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = 127.0.0.1:$PA
workers = 2

[tls]
cert = $P/termrsa.crt, $P/term.crt
key = $P/termrsa.key, $P/term.key
$1

[backend echo]
server = 127.0.0.1:$PE
[backend hash]
server = 127.0.0.1:$PH

[route]
stun = ${2:-echo}
INI
}
# sc NAME ARGS...: an s_client handshake through mux443; its output in $T/NAME.out.
sc() {
    local name=$1
    shift
    OPENSSL_CONF=/dev/null timeout 10 openssl s_client -connect "127.0.0.1:$PM" \
        -servername term.test "$@" </dev/null >"$T/$name.out" 2>&1 || true
}
wait_ready echo
wait_ready hash
conf ""
start_mux mux "$T/mux.ini"

log "1. the default TLS 1.2 suites"
sc cbc -tls1_2 -cipher AES128-SHA
assert_not_grep 'Cipher is AES128-SHA' "$T/cbc.out" "AES128-SHA was negotiated"
sc ecbc -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA
assert_not_grep 'Cipher is ECDHE-ECDSA-AES128-SHA' "$T/ecbc.out" "ECDHE-ECDSA-AES128-SHA was negotiated"
wait_metric "$PA" 'mux443_tls_handshake_failures_total{reason="no_shared_cipher"}' -eq 2 5
assert_grep 'TLS handshake failed: no shared cipher' "$T/mux.log" "the refusal's reason"
sc gcm -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
assert_grep 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' "$T/gcm.out" "ECDHE-ECDSA-AES128-GCM-SHA256"
sc t13 -tls1_3
assert_grep 'New, TLSv1.3, Cipher is TLS_' "$T/t13.out" "TLS 1.3"

log "3. a truncated TLS stream"
# A STUN Binding request inside TLS (TURNS): relayed to the echo backend.
STUN='\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl'
out=$("$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --sni term.test --data "$STUN" \
    --truncate --timeout 10 2>"$T/trunc.err") || fail "tls_client: $(cat "$T/trunc.err")"
assert_contains "$out" "eof truncated" "the client saw the end"
wait_log mux 'client ended without close_notify \(truncated TLS stream\)' 5
wait_metric "$PA" 'mux443_tls_truncated_total' -eq 1 5
wait_log echo 'eof in=20 ' 5 # the backend got its FIN after the 20 bytes
stop_mux mux

log "3b. a truncated stream still gets the reply sent after its end"
conf "" hash
start_mux mux3 "$T/mux.ini"
sha=$(printf "$STUN" | sha256sum | cut -d' ' -f1)
# First a clean half-close (close_notify, FIN): answered, and not counted as truncated.
# Its end is read before the answer exists (the backend answers at EOF), so it has been
# counted or not once the client has the answer.
for end in notify fin; do
    out=$("$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --sni term.test --data "$STUN" \
        "--$end-first" --timeout 10 2>"$T/$end.err") || fail "tls_client: $(cat "$T/$end.err")"
    assert_contains "$out" "reply: bytes=20 sha256=$sha" "$end: the backend's answer to the whole request"
    assert_contains "$out" "eof close_notify" "$end: close_notify after the answer"
done
wait_log mux3 'client ended without close_notify \(truncated TLS stream\)' 5
wait_metric "$PA" 'mux443_tls_truncated_total' -eq 1 5 # the bare FIN only
assert_eq "$(count_log mux3 'truncated TLS stream')" 1 "one truncated stream logged"
stop_mux mux3

log "2. min_version = tls1.3"
conf "min_version = tls1.3"
start_mux mux2 "$T/mux.ini"
sc old -tls1_2
assert_not_grep 'New, TLSv1.2' "$T/old.out" "TLS 1.2 negotiated with min_version = tls1.3"
wait_metric "$PA" 'mux443_tls_handshake_failures_total{reason="protocol_version"}' -eq 1 5
sc new -tls1_3
assert_grep 'New, TLSv1.3' "$T/new.out" "TLS 1.3 with min_version = tls1.3"
stop_mux mux2

log "4. -t validates the policy keys"
conf "ciphers = NOT-A-CIPHER"
if "$MUX443" -t -c "$T/mux.ini" >"$T/t1.out" 2>&1; then fail "-t accepted ciphers = NOT-A-CIPHER"; fi
assert_grep 'mux\.ini:[0-9]+: \[tls\] ciphers: no usable TLS 1\.2 cipher' "$T/t1.out" "ciphers error"
conf "ciphersuites = TLS_NOPE"
if "$MUX443" -t -c "$T/mux.ini" >"$T/t2.out" 2>&1; then fail "-t accepted ciphersuites = TLS_NOPE"; fi
assert_grep 'mux\.ini:[0-9]+: \[tls\] ciphersuites: no usable TLS 1\.3 suite' "$T/t2.out" "ciphersuites error"
conf "min_version = tls1.0"
if "$MUX443" -t -c "$T/mux.ini" >"$T/t3.out" 2>&1; then fail "-t accepted min_version = tls1.0"; fi
assert_grep 'mux\.ini:[0-9]+: \[tls\] min_version: unknown value' "$T/t3.out" "min_version error"
conf "ciphers = ECDHE-ECDSA-AES256-GCM-SHA384"
"$MUX443" -t -c "$T/mux.ini" >"$T/t4.out" 2>&1 || fail "-t refused a valid cipher list: $(cat "$T/t4.out")"
