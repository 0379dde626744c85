#!/usr/bin/env bash
# TLS passthrough: three `openssl s_server -www` backends, each with its own
# self-signed certificate; mux443 routes the untouched ClientHello by SNI (exact and
# *.wildcard), by ALPN, and by the [route] tls default. openssl s_client sees the
# certificate (and the -www status page) of the backend the route names.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
declare -A PORT
for n in a b c; do
    PORT[$n]=$(free_port)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=backend-$n.test" -keyout "$T/$n.key" -out "$T/$n.crt" 2>/dev/null
    start_bg "tls-$n" openssl s_server -accept "127.0.0.1:${PORT[$n]}" \
        -cert "$T/$n.crt" -key "$T/$n.key" -www
done

cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend tls-a]
server = 127.0.0.1:${PORT[a]}

[backend tls-b]
server = 127.0.0.1:${PORT[b]}

[backend tls-c]
server = 127.0.0.1:${PORT[c]}

[route sni-a]
sni = a.test
backend = tls-a

[route sni-b]
class = tls
sni = *.b.test
backend = tls-b

[route alpn-x]
alpn = x-proto
backend = tls-c

[route]
tls = tls-a
INI
for n in a b c; do wait_log "tls-$n" 'ACCEPT' 10; done
start_mux mux "$T/mux.ini"

# s_client NAME [ARGS]: the certificate subject the server sent, and the -www page.
s_client() {
    local sni=$1
    shift
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 15 openssl s_client -connect "127.0.0.1:$PM" \
        -servername "$sni" -ign_eof "$@" 2>&1 || true
}
expect_backend() { # SNI BACKEND [ARGS]
    local sni=$1 want=$2 out
    shift 2
    out=$(s_client "$sni" "$@")
    assert_contains "$out" "subject=CN = backend-$want.test" "SNI '$sni' $*: certificate"
    assert_contains "$out" "HTTP/1.0 200 ok" "SNI '$sni' $*: the -www page came back"
}

expect_backend a.test a
expect_backend x.b.test b
expect_backend deep.x.b.test b
expect_backend b.test a # *.b.test does not cover b.test: the tls default
expect_backend other.test c -alpn x-proto
expect_backend other.test c -alpn h2,x-proto
expect_backend other.test a -alpn h2
expect_backend a.test a -alpn x-proto # the SNI rule comes first

wait_count mux 'conn=[0-9]+ .*reason=' 8
assert_grep 'class=tls sni="a\.test" .*route=sni-a backend=tls-a server=127\.0\.0\.1:'"${PORT[a]}" "$T/mux.log"
assert_grep 'class=tls sni="deep\.x\.b\.test" .*route=sni-b backend=tls-b' "$T/mux.log"
assert_grep 'class=tls sni="other\.test" alpn="h2,x-proto" .*route=alpn-x backend=tls-c' "$T/mux.log"
assert_grep 'class=tls sni="b\.test" .*route=tls backend=tls-a' "$T/mux.log"
assert_not_grep 'reason="[^"]*(fail|error|refused|timeout)' "$T/mux.log"

# Chromium's 2 KB post-quantum hello, sent in two TCP segments (the SNI is past
# byte 1460 in the second one): routed by SNI to the tls default (sni.test).
client 127.0.0.1 "$PM" --file "$VECTORS/chromium-clienthello-sni.bin" --split 1000,1460 --timeout 1 \
    >"$T/chromium.out" 2>"$T/chromium.err" || true
wait_close mux 'sni="sni\.test"'
assert_grep 'class=tls sni="sni\.test" alpn="h2,http/1\.1" .*backend=tls-a' "$T/mux.log"
stop_mux mux
