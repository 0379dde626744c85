#!/usr/bin/env bash
# Static ufrag routing: `server = HOST:PORT ufrag_prefix=P` in a balance = ufrag backend
# sends ICE-TCP whose server ufrag starts with P straight to that server: no table
# lookup, no fan-out, no other worker sees the Binding. Ufrags that match no prefix
# (prefixes are case-sensitive) are left to the table and the fan-out.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ufrag_lib.sh
source "$INTEG_DIR/ufrag_lib.sh"

PM=$(free_port)
PA=$(free_port)
P1=$(free_port) # wa: ufrag_prefix=pa
P2=$(free_port) # wb: ufrag_prefix=pb+
P3=$(free_port) # wc: no prefix
P4=$(free_port) # ufrag_prefix=dn, nothing listens
ADMIN=127.0.0.1:$PA
S1=127.0.0.1:$P1 S2=127.0.0.1:$P2 S3=127.0.0.1:$P3 S4=127.0.0.1:$P4

# Each worker answers only its own ufrags (401 otherwise), as media servers do.
start_bg wa "$PY" "$PEERS/ice_tcp.py" wa "$P1" --ufrag paWorker1,paAnother2,paX0,paX1,paX2,paX3,PaCase1
start_bg wb "$PY" "$PEERS/ice_tcp.py" wb "$P2" --ufrag pb+Q/9,pb+Rt5
start_bg wc "$PY" "$PEERS/ice_tcp.py" wc "$P3" --ufrag Zed1,dnFallback1
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = $ADMIN
workers = 2
log_level = debug
fanout_timeout = 2s

[backend media]
balance = ufrag
server = $S1 ufrag_prefix=pa
server = $S2 ufrag_prefix=pb+, $S3
server = $S4 ufrag_prefix=dn

[route]
ice-tcp = media
INI
wait_ready wa
wait_ready wb
wait_ready wc
start_mux mux "$T/mux.ini"

HIT='mux443_ufrag_lookups_total{result="hit"}'
MISS='mux443_ufrag_lookups_total{result="miss"}'
fan0=$(metric mux443_ufrag_fanouts_total)
hit0=$(metric "$HIT")
miss0=$(metric "$MISS")

log "prefix ufrags go straight to their server"
# check_direct CLIENT USERNAME PEER SERVER
check_direct() {
    local out u
    out=$(ice "$1" "$2")
    u=$(re_escape "${2%%:*}")
    assert_contains "$out" "type=0x0101" "$2: Binding success (client: $(cat "$T/$1.err"))"
    assert_contains "$out" "txid-match=yes" "$2: transaction id"
    assert_contains "$out" "software=ice:$3" "$2: answered by $3"
    wait_close mux "ufrag=\"$u\""
    assert_grep "ufrag=\"$u\" route=ice-tcp backend=media server=$4 .*reason=\"done\"" "$T/mux.log"
}
check_direct c1 'paWorker1:cli1' wa "$S1"
check_direct c2 'paAnother2:cli2' wa "$S1"
check_direct c3 'pb+Q/9:cli3' wb "$S2"
check_direct c4 'pb+Rt5:cli4' wb "$S2"
# Several connections: all on the prefix's server, none spread over the pool.
for i in 0 1 2 3; do check_direct "cx$i" "paX$i:cli$i" wa "$S1"; done
assert_eq "$fan0" "$(metric mux443_ufrag_fanouts_total)" "fan-outs for prefix ufrags"
assert_eq "$hit0" "$(metric "$HIT")" "table hits for prefix ufrags (the prefix decides first)"
assert_eq "$miss0" "$(metric "$MISS")" "table misses for prefix ufrags"
assert_not_grep 'username=pa' "$T/wb.log" "wb saw a pa* Binding"
assert_not_grep 'username=pa' "$T/wc.log" "wc saw a pa* Binding"
assert_not_grep 'username=pb' "$T/wa.log" "wa saw a pb+* Binding"
assert_not_grep 'username=pb' "$T/wc.log" "wc saw a pb+* Binding"
assert_not_grep "owns ufrag 'p[ab]" "$T/mux.log" "a fan-out for a prefix ufrag"
admin_req GET /ufrags
assert_not_contains "$HTTP_BODY" '"pa' "prefix ufrags do not fill the table"
assert_not_contains "$HTTP_BODY" '"pb' "prefix ufrags do not fill the table"

log "ufrags that match no prefix (case-sensitive) go to the table / fan-out"
out=$(ice c5 'Zed1:cli5')
assert_contains "$out" "software=ice:wc" "Zed1 found by the fan-out (client: $(cat "$T/c5.err"))"
assert_grep "fan-out: $S3 owns ufrag 'Zed1'" "$T/mux.log"
out=$(ice c6 'PaCase1:cli6')
assert_contains "$out" "software=ice:wa" "PaCase1 found by the fan-out (client: $(cat "$T/c6.err"))"
assert_grep "fan-out: $S1 owns ufrag 'PaCase1'" "$T/mux.log"
assert_eq $((fan0 + 2)) "$(metric mux443_ufrag_fanouts_total)" "fan-outs for Zed1 and PaCase1"
assert_eq $((miss0 + 2)) "$(metric "$MISS")" "table misses for Zed1 and PaCase1"

log "a prefix whose server is down: closed, the Binding goes to no other worker"
out=$(ice c7 'dnFallback1:cli7')
[[ -z $out ]] || fail "dnFallback1: the client got an answer from another worker: $out"
wait_close mux 'ufrag="dnFallback1"'
assert_not_grep 'username=dnFallback1' "$T/wc.log" "wc (not the prefix's server) got dnFallback1"
assert_not_grep 'username=dnFallback1' "$T/wa.log" "wa got dnFallback1"
assert_eq $((fan0 + 2)) "$(metric mux443_ufrag_fanouts_total)" "no fan-out for a prefix ufrag whose server is down"
stop_mux mux
