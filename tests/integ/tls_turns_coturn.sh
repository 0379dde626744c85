#!/usr/bin/env bash
# TURNS through TLS termination to a real coturn: coturn listens on --tcp-proxy-port
# (plain TCP, PROXY v2 header expected), behind [backend turn] proxy_protocol = v2.
# `turnutils_uclient -t -S` (TURN over TLS) from 127.0.0.2 through mux443's port:
# mux443 terminates the TLS, finds STUN inside (class turns) and relays to coturn;
# the allocation succeeds, data flows through the relay, and coturn logs 127.0.0.2 as
# the client (the PROXY v2 header carried the real address, not mux443's).
# Plain `turnutils_uclient -t` (TURN/TCP) on the same port works too (class stun).
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
    log "SKIP: coturn is not installed"
    exit 77
fi
P=$T/pki
tls_ca "$P"
tls_leaf "$P" turn rsa ca turn.test turn.test

PM=$(free_port)
PT=$(free_port)
PP=$(free_port)
PWEB=$(free_port)
MINP=$((49152 + RANDOM % 16000))
start_bg turn turnserver -n --listening-ip=127.0.0.1 --listening-port="$PT" \
    --tcp-proxy-port="$PP" --relay-ip=127.0.0.1 --min-port="$MINP" --max-port=$((MINP + 100)) \
    --lt-cred-mech --user=test:secret --realm=mux443.test --no-tls --no-dtls --no-cli \
    --allow-loopback-peers --log-file=stdout --simple-log --verbose \
    --pidfile="$T/turn.pid" --db="$T/turndb"
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/turn.crt
key = $P/turn.key

[backend turn]
server = 127.0.0.1:$PP
proxy_protocol = v2

[backend web]
server = 127.0.0.1:$PWEB

[route]
stun = turn
http = web
INI
wait_log turn "TCP listener opened on : 127.0.0.1:$PP" 20
wait_ready web
start_mux mux "$T/mux.ini"

# uclient NAME FLAGS...: an allocation and data, client to client (-y), from 127.0.0.2.
uclient() {
    local name=$1 rc=0
    shift
    timeout 40 turnutils_uclient "$@" -y -n 5 -m 1 -L 127.0.0.2 -p "$PM" -u test -w secret \
        127.0.0.1 >"$T/$name.log" 2>&1 || rc=$?
    assert_eq 0 "$rc" "$name: turnutils_uclient exit status"
    assert_grep 'tot_recv_msgs=[1-9]' "$T/$name.log" "$name: data came back through the relay"
}

# uclient -S picks an SSL_CTX at random per connection, some of them TLS 1.0/1.1 only:
# those are refused (mux443 is TLS 1.2+; coturn's own TLS listener refuses them too on
# this OpenSSL) and uclient retries. It also reports a few "lost" packets over TLS
# even against coturn's own TLS port, so only TURN/TCP is held to zero loss.
uclient uclient-tls -t -S
assert_grep 'tls_connect: client session connected with cipher .*method=TLSv1\.[23]' "$T/uclient-tls.log"
assert_grep 'incoming packet ALLOCATE processed, success' "$T/turn.log" "coturn allocated"
assert_grep 'remote 127\.0\.0\.2:[0-9]+' "$T/turn.log" "coturn saw the real client 127.0.0.2"
assert_not_grep 'remote 127\.0\.0\.1:[0-9]+, reason' "$T/turn.log" "coturn saw mux443's address"
wait_close mux 'class=turns'
assert_grep 'client=127\.0\.0\.2:[0-9]+ .*class=turns .*route=stun backend=turn server=127\.0\.0\.1:'"$PP"' .*reason="done"' "$T/mux.log"
assert_not_grep 'class=(stun|tls-unknown|tls-timeout) ' "$T/mux.log" "TURN over TLS must be class turns"
n_tls=$(count_log mux 'class=turns .*reason=')

uclient uclient-tcp -t
assert_grep 'Total lost packets 0 ' "$T/uclient-tcp.log" "uclient-tcp: no packet lost"
wait_close mux 'class=stun '
assert_grep 'client=127\.0\.0\.2:[0-9]+ .*class=stun .*route=stun backend=turn server=127\.0\.0\.1:'"$PP"' .*reason="done"' "$T/mux.log"
assert_eq "$n_tls" "$(count_log mux 'class=turns .*reason=')" "TURN/TCP connections logged as turns"

# The web backend is still reachable over TLS on the same port (ALPN http/1.1 route).
printf 'GET /after-turn HTTP/1.0\r\nHost: turn.test\r\n\r\n' |
    timeout 15 openssl s_client -connect "127.0.0.1:$PM" -servername turn.test -ign_eof \
        -alpn stun.turn,http/1.1 >"$T/sc.out" 2>&1 || true
assert_grep '^web:web method=GET path=/after-turn ' "$T/sc.out"
assert_grep 'ALPN protocol: http/1\.1' "$T/sc.out" "mux443's ALPN preference: http/1.1 first"
# Nothing failed but uclient's own TLS 1.0/1.1 attempts.
assert_not_grep 'reason="[^"]*(error|timeout)|reason="TLS handshake failed: [^u]' "$T/mux.log"
stop_mux mux
