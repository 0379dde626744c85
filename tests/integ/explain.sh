#!/usr/bin/env bash
# mux443 --explain -c etc/mux443.ini < VECTOR: for every captured first flight, the
# class, the fields found (SNI, ALPN, Host, path, ufrag) and the route + backend chosen
# (with the config line of the route), as a live connection would.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

INI=$REPO/etc/mux443.ini
# route_line KEY: line of `KEY = ...` in etc/mux443.ini's [route] class map.
route_line() { grep -nE "^$1[[:space:]]*=" "$INI" | tail -n1 | cut -d: -f1; }

# explain FILE CHECK...: each CHECK is "field value" as printed (e.g. "class tls").
explain() {
    local f=$1 out rc=0 chk name val
    shift
    out=$("$MUX443" --explain -c "$INI" <"$f" 2>&1) || rc=$?
    assert_eq 0 "$rc" "--explain < $(basename "$f") exit status (output: $out)"
    for chk in "$@"; do
        name=${chk%% *}
        val=${chk#* }
        # shellcheck disable=SC2001,SC2016 # escape regex metacharacters in the value
        if ! grep -qE "^$name +$(sed 's/[.[\*^$()+?{|]/\\&/g' <<<"$val")( |\$)" <<<"$out"; then
            printf '%s\n' "$out" >&2
            fail "--explain < $(basename "$f"): expected '$name $val'"
        fi
    done
}

# The example holds a default certificate: every hello whose SNI no passthrough rule
# takes is terminated, and the route is chosen later from the bytes inside.
TLS_LINE=$(grep -n '^\[tls\]' "$INI" | cut -d: -f1)
TERM="terminate with [tls] ($INI:$TLS_LINE); the route is chosen from the bytes inside"
explain "$VECTORS/chromium-clienthello-sni.bin" "class tls" "sni sni.test" "alpn h2,http/1.1" \
    "version 0x0304" "tls $TERM"
explain "$VECTORS/chromium-clienthello-turns.bin" "class tls" "sni turn.test" "alpn -" "tls $TERM"
explain "$VECTORS/curl-clienthello.bin" "class tls" "sni sni.test" "alpn h2,http/1.1" "tls $TERM"
explain "$VECTORS/openssl-s_client-clienthello.bin" "class tls" "sni sni.test" "alpn -" "tls $TERM"
explain "$VECTORS/chromium-turn-tcp-allocate.bin" "class stun" "route stun ($INI:$(route_line stun))" \
    "backend turn: 127.0.0.1:13479"
explain "$VECTORS/turnutils-uclient-tcp.bin" "class stun" "route stun"
explain "$VECTORS/chromium-ice-tcp-binding.bin" "class ice-tcp" "ufrag dptM" "client RNob" \
    "route ice-tcp ($INI:$(route_line ice-tcp))" "backend media: 127.0.0.1:14444 127.0.0.1:14445"
explain "$VECTORS/chromium-websocket-upgrade.bin" "class websocket" "host ws.test" "path /ws" \
    "route websocket ($INI:$(route_line websocket))" "backend signalling: 127.0.0.1:18081"

printf 'GET /index.html?x=1 HTTP/1.1\r\nHost: Example.test:8443\r\n\r\n' >"$T/get.bin"
explain "$T/get.bin" "class http" "path /index.html" "route http ($INI:$(route_line http))" \
    "backend web: 127.0.0.1:18080"
printf '\xff\xfe garbage \x00\x01\r\n' >"$T/garbage.bin"
explain "$T/garbage.bin" "class unknown" "route -"
: >"$T/empty.bin"
explain "$T/empty.bin" "class timeout" "route -"
head -c 1000 "$VECTORS/chromium-clienthello-sni.bin" >"$T/half-hello.bin"
explain "$T/half-hello.bin" "result incomplete:" "class timeout"

# A listener that expects a PROXY header (-L NAME).
cat >"$T/pp.ini" <<INI
[mux443]
listen = 127.0.0.1:1

[listener lb]
listen = 127.0.0.1:2
proxy_protocol = yes

[backend media]
server = 127.0.0.1:3

[route]
ice-tcp = media
INI
"$PY" -c '
import sys; sys.path.insert(0, sys.argv[1])
from peerlib import build_proxy_header
sys.stdout.buffer.write(build_proxy_header(2, ("192.0.2.7", 1234), ("127.0.0.1", 2)))
sys.stdout.buffer.write(open(sys.argv[2], "rb").read())' "$PEERS" "$VECTORS/chromium-ice-tcp-binding.bin" >"$T/pp.bin"
out=$("$MUX443" --explain -c "$T/pp.ini" -L lb <"$T/pp.bin")
assert_contains "$out" "proxy     192.0.2.7:1234 (28 header bytes)" "--explain -L lb: PROXY header"
assert_contains "$out" "class     ice-tcp" "--explain -L lb: class behind the header"
assert_contains "$out" "route     ice-tcp" "--explain -L lb: route"
out=$("$MUX443" --explain -c "$T/pp.ini" -L lb <"$VECTORS/chromium-ice-tcp-binding.bin")
assert_contains "$out" "expected a PROXY header" "--explain -L lb without a header"
