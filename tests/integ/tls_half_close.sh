#!/usr/bin/env bash
# TLS half-close with a full socket: mux443 terminates TLS for a client that sends a
# request and then reads nothing; the backend answers with BYTES of data and closes. Only
# once the backend has written everything and closed does the client start reading:
# it must get every byte and then mux443's close_notify (a clean TLS end of stream), not
# a FIN alone (Python's ssl, suppress_ragged_eofs=False, raises SSLEOFError on that).
# The bug this guards against (fixed in 9a70af1): the half-close sent the FIN right after
# SSL_shutdown even when the socket was full and close_notify was still in OpenSSL's
# buffer, so the FIN overtook it. Over loopback TCP the kernel nearly always takes the
# short alert into the last unsent segment, so this case passes against the old code as
# well; tests/unit/test_relay.c reproduces the full socket exactly (a Unix socket).
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

# Fits in the socket buffers between the backend and the client (about 7 MB with the
# namespace's default TCP buffer sizes), so that the backend can finish and close while
# the client reads nothing.
BYTES=$((3 * 1024 * 1024))
P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test

PM=$(free_port)
PB=$(free_port)
start_bg blast "$PY" "$PEERS/tcp_echo.py" blast "$PB" --mode blast --blast-bytes "$BYTES"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/site.crt
key = $P/site.key

[backend blast]
server = 127.0.0.1:$PB

[route]
http = blast
INI
wait_ready blast
start_mux mux "$T/mux.ini"

start_bg reader "$PY" "$PEERS/tls_slow_reader.py" 127.0.0.1 "$PM" --sni site.test \
    --ca "$P/ca.crt" --request 'GET /big HTTP/1.1\r\nHost: site.test\r\n\r\n'
wait_ready reader
# The backend has written everything and closed while the client read nothing.
wait_log blast 'blast sent=' 30
sha=$(sed -n 's/.*blast sent=[0-9]* sha256=\([0-9a-f]*\).*/\1/p' "$T/blast.log")
kill -USR1 "$(pid_of reader)"
wait_exit reader 30
assert_grep "eof close_notify recv=$BYTES sha256=$sha" "$T/reader.log" \
    "the client got every byte, then close_notify"
assert_eq 0 "$STOP_RC" "tls_slow_reader.py exit status"
wait_close mux 'class=https'
assert_grep "class=https .*bytes_out=$BYTES .*reason=\"done\"" "$T/mux.log" "close line"
stop_mux mux
