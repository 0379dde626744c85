#!/usr/bin/env bash
# WSS through TLS termination: a real WebSocket client (python3-websockets 10.4 over an
# ssl context that trusts the test CA, server_hostname set) connects to wss://sig.test
# on mux443's port; mux443 terminates, sees the Upgrade inside (class wss) and relays
# to the ws_echo backend: every message echoes. On the same port:
#   - [route wss-alt] class = websocket, sni = alt.test: a terminated client whose
#     ClientHello named alt.test goes to another ws backend (rules see the SNI);
#   - [route plainws] class = websocket, tls = no: plain ws:// goes elsewhere, and the
#     wss clients never match it (they used TLS);
#   - an https GET (curl) goes to the web backend, class https.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" sig ec ca sig.test sig.test alt.test

PM=$(free_port)
PWEB=$(free_port)
PSIG=$(free_port)
PALT=$(free_port)
PPLAIN=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg sig "$PY" "$PEERS/ws_echo.py" sig "$PSIG"
start_bg sigalt "$PY" "$PEERS/ws_echo.py" sigalt "$PALT"
start_bg sigplain "$PY" "$PEERS/ws_echo.py" sigplain "$PPLAIN"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/sig.crt
key = $P/sig.key

[backend web]
server = 127.0.0.1:$PWEB

[backend sig]
server = 127.0.0.1:$PSIG

[backend sigalt]
server = 127.0.0.1:$PALT

[backend sigplain]
server = 127.0.0.1:$PPLAIN

[route plainws]
class = websocket
tls = no
backend = sigplain

[route wss-alt]
class = websocket
sni = alt.test
backend = sigalt

[route]
websocket = sig
http = web
INI
for n in web sig sigalt sigplain; do wait_ready "$n"; done
start_mux mux "$T/mux.ini"

tlsc() { "$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --ca "$P/ca.crt" --timeout 10 "$@"; }

# wss://sig.test/chat: three messages, each echoed by the sig backend.
rc=0
tlsc --sni sig.test --alpn h2,http/1.1 --ws /chat --message hello --count 3 >"$T/wss.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "wss client exit status ($(cat "$T/wss.out"))"
assert_grep '^tls: version=TLSv1\.3 alpn=http/1\.1 ' "$T/wss.out" "wss: TLS 1.3 with ALPN http/1.1"
for i in 0 1 2; do
    assert_grep "^ws-reply: ws:sig echo=hello-$i$" "$T/wss.out" "wss: message $i echoed by sig"
done
assert_grep '^ws:sig open path=/chat peer=127\.0\.0\.1:' "$T/sig.log"

# wss://alt.test/: the SNI rule applies to the terminated connection.
rc=0
tlsc --sni alt.test --alpn http/1.1 --ws /alt --message hi >"$T/wss-alt.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "wss alt client exit status ($(cat "$T/wss-alt.out"))"
assert_grep '^ws-reply: ws:sigalt echo=hi$' "$T/wss-alt.out" "wss with SNI alt.test: echoed by sigalt"

# Plain ws:// on the same port: the tls = no rule.
rc=0
"$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/plain" plain-hello >"$T/ws-plain.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "plain ws client exit status ($(cat "$T/ws-plain.out"))"
assert_grep '^ws:sigplain echo=plain-hello$' "$T/ws-plain.out" "plain ws: echoed by sigplain"

# https on the same port: the web backend.
rc=0
curl -sS --max-time 15 --cacert "$P/ca.crt" --resolve "sig.test:$PM:127.0.0.1" \
    "https://sig.test:$PM/page" >"$T/curl.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "curl exit status ($(cat "$T/curl.out"))"
assert_grep "^web:web method=GET path=/page host=sig\\.test:$PM " "$T/curl.out" "https GET: web backend"

wait_count mux 'conn=[0-9]+ .*reason=' 4
assert_grep 'class=wss sni="sig\.test" alpn="h2,http/1\.1" host="sig\.test" path="/chat" route=websocket backend=sig server=127\.0\.0\.1:'"$PSIG"' .*reason="done"' "$T/mux.log"
assert_grep 'class=wss sni="alt\.test" alpn="http/1\.1" host="alt\.test" path="/alt" route=wss-alt backend=sigalt .*reason="done"' "$T/mux.log"
assert_grep 'class=websocket host="127\.0\.0\.1" path="/plain" route=plainws backend=sigplain .*reason="done"' "$T/mux.log"
assert_grep 'class=https sni="sig\.test" alpn="h2,http/1\.1" host="sig\.test" path="/page" route=http backend=web .*reason="done"' "$T/mux.log"
assert_not_grep 'class=wss .*route=plainws' "$T/mux.log" "a wss client matched tls = no"
assert_eq 0 "$(count_log sigplain 'open path=/(chat|alt)')" "wss connections that reached sigplain"
stop_mux mux
