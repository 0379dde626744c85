#!/usr/bin/env bash
# ICE-TCP: Chromium's captured first ICE check (RFC 4571 frame, STUN Binding request,
# USERNAME dptM:RNob) goes through mux443 to an ICE-TCP responder, which answers with a
# framed Binding success (same transaction id). mux443 logs class=ice-tcp ufrag="dptM";
# a ufrag rule sends that ufrag to its own worker, others go to the class map's pool.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

VEC=$VECTORS/chromium-ice-tcp-binding.bin
[[ -r $VEC ]] || fail "missing vector $VEC"
PM=$(free_port)
P1=$(free_port)
P2=$(free_port)
start_bg m1 "$PY" "$PEERS/ice_tcp.py" m1 "$P1"
start_bg m2 "$PY" "$PEERS/ice_tcp.py" m2 "$P2"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend media]
server = 127.0.0.1:$P1

[backend media-dpt]
server = 127.0.0.1:$P2

[route by-ufrag]
class = ice-tcp
ufrag = dpt
backend = media-dpt

[route]
ice-tcp = media
INI
wait_ready m1
wait_ready m2
start_mux mux "$T/mux.ini"

out=$(client 127.0.0.1 "$PM" --file "$VEC" --frame 2>"$T/c1.err")
assert_contains "$out" "type=0x0101 txid=3334722f536b61526c307547 txid-match=yes" "Binding success"
assert_contains "$out" "software=ice:m2" "ufrag rule picked worker m2"
assert_grep 'ice:m2 binding username=dptM:RNob' "$T/m2.log"
wait_close mux 'ufrag="dptM"'
assert_grep 'class=ice-tcp ufrag="dptM" .*route=by-ufrag backend=media-dpt server=127\.0\.0\.1:'"$P2" "$T/mux.log"

# The same frame in three pieces (inside the length field, inside the STUN header).
out=$(client 127.0.0.1 "$PM" --file "$VEC" --split 1,9 --frame 2>/dev/null)
assert_contains "$out" "txid-match=yes" "split frame"
assert_contains "$out" "software=ice:m2" "split frame routed by ufrag"

# Another ufrag: the class map's pool.
out=$(client 127.0.0.1 "$PM" --ice-binding 'Zq9x:abcd' --frame 2>/dev/null)
assert_contains "$out" "type=0x0101" "Binding success for another ufrag"
assert_contains "$out" "txid-match=yes" "transaction id kept"
assert_contains "$out" "software=ice:m1" "ufrag Zq9x goes to the ice-tcp default"
assert_grep 'ice:m1 binding username=Zq9x:abcd' "$T/m1.log"
wait_close mux 'ufrag="Zq9x"'
assert_grep 'class=ice-tcp ufrag="Zq9x" .*route=ice-tcp backend=media' "$T/mux.log"
stop_mux mux
