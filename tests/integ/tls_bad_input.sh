#!/usr/bin/env bash
# Bad TLS input against one mux443 (peek_timeout 1, [route] on_timeout set, no default,
# no default certificate), while a healthy terminated connection (TLS -> echo backend)
# stays open throughout and still echoes at the end. Each bad client comes from its own
# 127.0.0.x so that its close line can be picked out:
#   .11 ClientHello for a name no certificate covers -> closed, "no certificate ...";
#   .12 ClientHello, then nothing (handshake never completes) -> "peek timeout during
#       the TLS handshake", not sent to on_timeout;
#   .13 plain-text HTTP where the only http routes say tls = yes -> "no route";
#   .14 a flood of 50 concurrent stalled handshakes -> all closed and logged;
#   .15 handshake completed, then silence -> closed "inside TLS", not on_timeout;
#   .16 handshake completed, then bytes no probe knows -> "unrecognised protocol
#       inside TLS" (never relayed);
#   .17 control: a silent plain client does go to on_timeout;
#   .18 ClientHello, then a record the handshake cannot accept -> "TLS handshake failed".
# File descriptors of mux443 come back to their count before the bad clients.
# Then the held connection still echoes and a new TLS client is served.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" term ec ca term.test term.test

PM=$(free_port)
PWEB=$(free_port)
PECHO=$(free_port)
PSINK=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PECHO"
start_bg sink "$PY" "$PEERS/tcp_echo.py" sink "$PSINK" --hello
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
peek_timeout = 1

[tls term]
cert = $P/term.crt
key = $P/term.key

[backend web]
server = 127.0.0.1:$PWEB

[backend echo]
server = 127.0.0.1:$PECHO

[backend sink]
server = 127.0.0.1:$PSINK

[route hold]
host = hold.test
tls = yes
backend = echo

[route secure-web]
class = http
tls = yes
backend = web

[route]
on_timeout = sink
INI
for n in web echo sink; do wait_ready "$n"; done
start_mux mux "$T/mux.ini"

tlsc() { "$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --ca "$P/ca.crt" "$@"; }
# close_for ADDR: the close lines of the clients from ADDR.
close_for() { close_lines mux "client=${1//./\\.}:[0-9]+ "; }

# The healthy connection, held open to the end.
start_bg hold "$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --ca "$P/ca.crt" --sni term.test \
    --bind 127.0.0.10 --data 'GET /hold HTTP/1.1\r\nHost: hold.test\r\n\r\n' --hold
wait_log hold 'ready hold' 15

# fds NAME: open file descriptors of process NAME.
fds() { find "/proc/$(pid_of "$1")/fd" -mindepth 1 -maxdepth 1 | wc -l; }
FD_BASE=$(fds mux)

# .11: no certificate for this name, no default certificate, no [route] tls/default.
rc=0
tlsc --bind 127.0.0.11 --sni unknown.test --data 'GET / HTTP/1.0\r\n\r\n' --timeout 5 >"$T/unknown.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "unknown SNI: the TLS client must fail ($(cat "$T/unknown.out"))"
wait_log mux 'client=127\.0\.0\.11:'
assert_eq 1 "$(close_for 127.0.0.11 | grep -c 'class=tls sni="unknown\.test" route=- .*reason="no certificate for this SNI and no \[route\] tls or default"')" \
    "unknown SNI close line"

# .12: hello, then nothing.
rc=0
"$PY" "$PEERS/tls_stall.py" 127.0.0.1 "$PM" --bind 127.0.0.12 --sni term.test --count 1 --wait 6 >"$T/stall.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "stalled handshake: mux443 must close it ($(cat "$T/stall.out"))"
assert_grep '^closed=1 of 1 answered=1' "$T/stall.out" "stalled handshake: ServerHello sent, then closed"
wait_log mux 'client=127\.0\.0\.12:'
assert_eq 1 "$(close_for 127.0.0.12 | grep -c 'class=tls sni="term\.test" route=- backend=- .*reason="peek timeout during the TLS handshake"')" \
    "stalled handshake close line"
close_for 127.0.0.12 | grep -Eq 'dur=(0\.9|1\.[0-9])' || fail "stalled handshake: closed after peek_timeout 1 s? $(close_for 127.0.0.12)"

# .13: plain HTTP, but every http route wants TLS.
client 127.0.0.1 "$PM" --bind 127.0.0.13 --data 'GET /plain HTTP/1.1\r\nHost: hold.test\r\n\r\n' --timeout 5 \
    >"$T/plain.out" 2>"$T/plain.err" || true
assert_grep 'end=(eof|reset)' "$T/plain.err" "plain HTTP on tls = yes routes: closed"
assert_not_grep 'web:|GET /plain' "$T/plain.out" "plain HTTP was relayed"
wait_log mux 'client=127\.0\.0\.13:'
assert_eq 1 "$(close_for 127.0.0.13 | grep -c 'class=http host="hold\.test" path="/plain" route=- .*reason="no route for class http"')" \
    "plain HTTP close line"

# .14: 50 concurrent stalled handshakes.
rc=0
"$PY" "$PEERS/tls_stall.py" 127.0.0.1 "$PM" --bind 127.0.0.14 --sni term.test --count 50 --wait 15 >"$T/flood.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "handshake flood: every connection closed ($(cat "$T/flood.out"))"
assert_grep '^closed=50 of 50 ' "$T/flood.out"
wait_count mux 'client=127\.0\.0\.14:[0-9]+ .*reason="peek timeout during the TLS handshake"' 50 10
assert_eq 50 "$(close_for 127.0.0.14 | wc -l)" "handshake flood: close lines"

# .15: handshake done, then silence; .16: handshake done, then garbage.
rc=0
tlsc --bind 127.0.0.15 --sni term.test --timeout 6 >"$T/silent-tls.out" 2>&1 || rc=$?
assert_grep '^tls: version=TLSv1\.3 ' "$T/silent-tls.out" "silent inside TLS: the handshake completed"
assert_grep '^eof$' "$T/silent-tls.out" "silent inside TLS: closed by mux443"
assert_not_grep 'tcp:sink' "$T/silent-tls.out" "silent inside TLS was sent to on_timeout"
wait_log mux 'client=127\.0\.0\.15:'
assert_eq 1 "$(close_for 127.0.0.15 | grep -c 'class=tls-timeout .*route=- backend=- .*reason="peek timeout after 0 bytes inside TLS"')" \
    "silent inside TLS close line"
rc=0
tlsc --bind 127.0.0.16 --sni term.test --data '\x01\x02garbage, not a protocol\r\n\r\n' --timeout 6 >"$T/garbage-tls.out" 2>&1 || rc=$?
assert_grep '^eof$' "$T/garbage-tls.out" "garbage inside TLS: closed by mux443"
wait_log mux 'client=127\.0\.0\.16:'
assert_eq 1 "$(close_for 127.0.0.16 | grep -c 'class=tls-unknown .*route=- backend=- .*reason="unrecognised protocol inside TLS')" \
    "garbage inside TLS close line"

# .17: control: a plain silent client goes to on_timeout.
client 127.0.0.1 "$PM" --bind 127.0.0.17 --timeout 3 >"$T/silent-plain.out" 2>"$T/silent-plain.err" || true
wait_log mux 'client=127\.0\.0\.17:'
assert_eq 1 "$(close_for 127.0.0.17 | grep -c 'class=timeout route=on_timeout backend=sink ')" \
    "silent plain client: on_timeout backend"
assert_eq 1 "$(count_log sink 'open')" "connections that reached on_timeout (only the plain silent one)"

# .18: a broken handshake.
rc=0
"$PY" "$PEERS/tls_stall.py" 127.0.0.1 "$PM" --bind 127.0.0.18 --sni term.test --garbage --wait 6 >"$T/broken.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "broken handshake: mux443 must close it ($(cat "$T/broken.out"))"
wait_log mux 'client=127\.0\.0\.18:'
assert_eq 1 "$(close_for 127.0.0.18 | grep -c 'class=tls sni="term\.test" route=- backend=- .*reason="TLS handshake failed: ')" \
    "broken handshake close line"

# Every bad connection is gone: mux443 holds no more descriptors than before them.
deadline=$((SECONDS + 10))
while (($(fds mux) > FD_BASE)) && ((SECONDS < deadline)); do sleep 0.1; done
(($(fds mux) <= FD_BASE)) || fail "mux443 holds $(fds mux) descriptors, $FD_BASE before the bad clients"

# The held connection is untouched; mux443 still accepts and serves.
kill -USR1 "$(pid_of hold)"
wait_log hold 'hold: ping 1 (ok|FAILED)' 10
assert_grep 'hold: ping 1 ok' "$T/hold.log" "held connection after the bad input"
rc=0
tlsc --sni term.test --data 'GET /after HTTP/1.0\r\nHost: web.test\r\n\r\n' >"$T/after.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "new TLS client after the bad input ($(cat "$T/after.out"))"
assert_grep '^reply: web:web method=GET path=/after ' "$T/after.out"
wait_close mux 'path="/after"'
assert_grep 'class=https sni="term\.test" host="web\.test" path="/after" route=secure-web backend=web .*reason="done"' "$T/mux.log"
stop "hold"
wait_close mux 'client=127\.0\.0\.10:'
assert_eq 1 "$(close_for 127.0.0.10 | grep -c 'class=https sni="term\.test" host="hold\.test" path="/hold" route=hold backend=echo ')" \
    "held connection close line"
stop_mux mux
