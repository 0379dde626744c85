#!/usr/bin/env bash
# ICE-TCP fan-out (balance = ufrag, ufrag unknown to the table): mux443 sends the client's
# first RFC 4571 frame to every server of the pool and keeps the one that answers with a
# framed Binding success (same transaction id). The pool holds the owner of the ufrag,
# a worker that answers 401 for everything, a silent one, one that closes at once, and
# one configured but down. The owner wins (the client gets its answer at once), the
# ufrag is cached (the next connection is a hit, no fan-out), the other candidate
# connections are closed; a ufrag nobody owns is closed after fanout_timeout with the
# counts in the reason (before it when every server has answered). fanout_max bounds
# the fan-outs in progress.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ufrag_lib.sh
source "$INTEG_DIR/ufrag_lib.sh"

VEC=$VECTORS/chromium-ice-tcp-binding.bin # USERNAME dptM:RNob
[[ -r $VEC ]] || fail "missing vector $VEC"
PM=$(free_port)
PA=$(free_port)
P1=$(free_port) # own: owns FoOwnA and dptM
P2=$(free_port) # err: 401 for every ufrag
P3=$(free_port) # sil: reads, never answers
P4=$(free_port) # clo: closes at once
P5=$(free_port) # down: nothing listens
ADMIN=127.0.0.1:$PA
S1=127.0.0.1:$P1 S2=127.0.0.1:$P2 S3=127.0.0.1:$P3 S4=127.0.0.1:$P4 S5=127.0.0.1:$P5
FANOUT_TIMEOUT=2

start_bg own "$PY" "$PEERS/ice_tcp.py" own "$P1" --ufrag FoOwnA,dptM
start_bg err "$PY" "$PEERS/ice_tcp.py" err "$P2" --ufrag NotAnyClientUfrag
start_bg sil "$PY" "$PEERS/ice_silent.py" sil "$P3"
start_bg clo "$PY" "$PEERS/ice_closer.py" clo "$P4"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = $ADMIN
workers = 2
log_level = debug
fanout_timeout = ${FANOUT_TIMEOUT}s
ufrag_grace = 5m

# The owner last: it must win on its answer, not on its place.
[backend media]
balance = ufrag
server = $S2, $S3, $S4, $S5, $S1

# The same without the silent worker: every candidate answers or fails at once.
[backend quick]
balance = ufrag
server = $S2, $S4, $S5, $S1

[route quick]
class = ice-tcp
ufrag = Qk
backend = quick

[route]
ice-tcp = media
INI
for p in own err sil clo; do wait_ready "$p"; done
start_mux mux "$T/mux.ini"

WIN_OWN="mux443_ufrag_fanout_wins_total{backend=\"media\",server=\"$S1\"}"
HIT='mux443_ufrag_lookups_total{result="hit"}'
MISS='mux443_ufrag_lookups_total{result="miss"}'
fan0=$(metric mux443_ufrag_fanouts_total)
fail0=$(metric mux443_ufrag_fanout_failures_total)
hit0=$(metric "$HIT")
miss0=$(metric "$MISS")
assert_eq 0 "$(metric "$WIN_OWN")" "wins of the owner at start"

# ---------------------------------------------------------------- the owner wins
log "ufrag FoOwnA (unknown to the table): fan-out, the owner wins"
out=$(ice c1 'FoOwnA:cli1')
assert_contains "$out" "type=0x0101" "FoOwnA: Binding success (client: $(cat "$T/c1.err"))"
assert_contains "$out" "txid-match=yes" "FoOwnA: the client's transaction id"
assert_contains "$out" "software=ice:own" "FoOwnA: the answer is the owner's"
# The owner answers at once: the client must not wait for the silent candidate.
assert_between "$(client_t c1)" 0 $((FANOUT_TIMEOUT * 3 / 4)).0 "FoOwnA: seconds to the answer"
wait_close mux 'ufrag="FoOwnA"'
assert_grep "fan-out: $S1 owns ufrag 'FoOwnA'" "$T/mux.log"
assert_grep "class=ice-tcp ufrag=\"FoOwnA\" route=ice-tcp backend=media server=$S1 .*reason=\"done\"" "$T/mux.log"
# Every server in service got the first frame (or a connection).
assert_grep 'ice:err binding username=FoOwnA:cli1' "$T/err.log"
assert_grep 'ice:own binding username=FoOwnA:cli1' "$T/own.log"
wait_log sil 'ice:sil silent frame len=[0-9]+ username=FoOwnA:cli1 ' 5
wait_log clo 'ice:clo closer accepted-and-closed' 5
# The losers' connections are closed once the owner has won.
wait_log sil 'ice:sil silent closed' 5
assert_eq $((fan0 + 1)) "$(metric mux443_ufrag_fanouts_total)" "fan-outs after FoOwnA"
assert_eq "$fail0" "$(metric mux443_ufrag_fanout_failures_total)" "fan-out failures after FoOwnA"
assert_eq $((miss0 + 1)) "$(metric "$MISS")" "lookup misses after FoOwnA"
assert_eq 1 "$(metric "$WIN_OWN")" "fan-out wins of the owner"
for s in "$S2" "$S3" "$S4" "$S5"; do
    assert_eq 0 "$(metric "mux443_ufrag_fanout_wins_total{backend=\"media\",server=\"$s\"}")" \
        "fan-out wins of loser $s"
done
assert_eq "FoOwnA media $S1 fanout" "$(ufrag_list | grep '^FoOwnA ')" "GET /ufrags: the learnt entry"

# ---------------------------------------------------------------- cached
log "FoOwnA again: a hit in the table, straight to the owner, no fan-out"
sil_frames=$(count_log sil 'silent frame')
err_bindings=$(count_log err 'binding')
clo_conns=$(count_log clo 'accepted-and-closed')
out=$(ice c2 'FoOwnA:cli2')
assert_contains "$out" "software=ice:own" "FoOwnA again (client: $(cat "$T/c2.err"))"
assert_contains "$out" "txid-match=yes" "FoOwnA again: transaction id"
assert_grep 'ice:own binding username=FoOwnA:cli2' "$T/own.log"
assert_eq $((fan0 + 1)) "$(metric mux443_ufrag_fanouts_total)" "fan-outs after the cached FoOwnA"
assert_eq $((hit0 + 1)) "$(metric "$HIT")" "lookup hits after the cached FoOwnA"
assert_eq 1 "$(metric "$WIN_OWN")" "wins of the owner after the cached FoOwnA"
assert_eq "$sil_frames" "$(count_log sil 'silent frame')" "frames the silent worker got (cache hit)"
assert_eq "$err_bindings" "$(count_log err 'binding')" "Bindings the 401 worker got (cache hit)"
assert_eq "$clo_conns" "$(count_log clo 'accepted-and-closed')" "connections to the closer (cache hit)"

# ---------------------------------------------------------------- nobody owns it
log "a ufrag nobody owns: closed after fanout_timeout (${FANOUT_TIMEOUT}s)"
out=$(ice c3 'NoOwner1:cli3' --timeout 15)
[[ -z $out ]] || fail "NoOwner1: the client got an answer: $out"
assert_grep 'end=no-frame:EOF' "$T/c3.err"
assert_between "$(client_t c3)" $((FANOUT_TIMEOUT - 1)).8 $((FANOUT_TIMEOUT + 3)) "NoOwner1: seconds until closed"
wait_close mux 'ufrag="NoOwner1"'
reason="ICE-TCP fan-out: no server of backend media took ufrag 'NoOwner1' (the others stayed silent; 1 refused or failed to connect, 2 answered with an error, 1 closed)"
assert_grep "ufrag=\"NoOwner1\" route=ice-tcp backend=media server=- .*reason=\"$(re_escape "$reason")\"" \
    "$T/mux.log" "close line of NoOwner1"
assert_eq $((fail0 + 1)) "$(metric mux443_ufrag_fanout_failures_total)" "fan-out failures after NoOwner1"
assert_eq $((fan0 + 2)) "$(metric mux443_ufrag_fanouts_total)" "fan-outs after NoOwner1"
assert_eq 1 "$(metric "$WIN_OWN")" "wins of the owner after NoOwner1"
if ufrag_list | grep -q '^NoOwner1 '; then fail "NoOwner1 was cached although nobody took it"; fi
assert_grep 'ice:own binding username=NoOwner1:cli3' "$T/own.log"
wait_log sil 'silent frame len=[0-9]+ username=NoOwner1:cli3 ' 5
# No candidate connection outlives the fan-out.
wait_count sil 'silent closed' "$(count_log sil 'silent accepted')" 5

log "a ufrag nobody owns, in a pool without a silent worker: closed at once"
out=$(ice c4 'QkNobody:cli4' --timeout 15)
[[ -z $out ]] || fail "QkNobody: the client got an answer: $out"
assert_between "$(client_t c4)" 0 $((FANOUT_TIMEOUT * 3 / 4)).0 "QkNobody: seconds until closed (no silent server)"
wait_close mux 'ufrag="QkNobody"'
reason="ICE-TCP fan-out: no server of backend quick took ufrag 'QkNobody' (every server answered; 1 refused or failed to connect, 2 answered with an error, 1 closed)"
assert_grep "ufrag=\"QkNobody\" route=quick backend=quick .*reason=\"$(re_escape "$reason")\"" \
    "$T/mux.log" "close line of QkNobody"

# ---------------------------------------------------------------- bytes after the first frame
log "Chromium's captured Binding + a 2nd frame in the same write: both reach the winner"
own_b=$(count_log own 'binding username=dptM:RNob')
out=$(client 127.0.0.1 "$PM" --file "$VEC" --ice-binding 'dptM:RNob' --frame 2>"$T/c5.err") || true
assert_contains "$out" "type=0x0101 txid=3334722f536b61526c307547 txid-match=yes" "vector: Binding success"
assert_contains "$out" "software=ice:own" "vector: the owner of dptM won"
wait_count own 'binding username=dptM:RNob' $((own_b + 2)) 5
peers=$(grep 'binding username=dptM:RNob' "$T/own.log" | tail -n 2 | sed -E 's/.*peer=//' | sort -u | wc -l)
assert_eq 1 "$peers" "both dptM frames came on the winning connection"
wait_close mux 'ufrag="dptM"'
assert_grep "fan-out: $S1 owns ufrag 'dptM'" "$T/mux.log"
assert_eq 2 "$(metric "$WIN_OWN")" "wins of the owner after dptM"
assert_eq $((fan0 + 4)) "$(metric mux443_ufrag_fanouts_total)" "fan-outs at the end"
stop_mux mux

# ---------------------------------------------------------------- fanout_max
log "fanout_max = 1, silent pool: a 2nd concurrent fan-out is refused"
PM2=$(free_port)
PA2=$(free_port)
Q1=$(free_port)
Q2=$(free_port)
start_bg sa "$PY" "$PEERS/ice_silent.py" sa "$Q1"
start_bg sb "$PY" "$PEERS/ice_silent.py" sb "$Q2"
cat >"$T/mux2.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM2
admin = 127.0.0.1:$PA2
workers = 2
fanout_timeout = ${FANOUT_TIMEOUT}s
fanout_max = 1

[backend silent]
balance = ufrag
server = 127.0.0.1:$Q1, 127.0.0.1:$Q2

[route]
ice-tcp = silent
INI
wait_ready sa
wait_ready sb
start_mux mux2 "$T/mux2.ini"
ADMIN=127.0.0.1:$PA2
PM=$PM2
start_bg slow1 "$PY" "$PEERS/client.py" 127.0.0.1 "$PM2" --ice-binding 'Slow1:aaaa' --frame --timeout 15
wait_log sa 'silent frame len=[0-9]+ username=Slow1:aaaa ' 10
wait_log sb 'silent frame len=[0-9]+ username=Slow1:aaaa ' 10
out=$(ice c6 'Slow2:bbbb' --timeout 15)
[[ -z $out ]] || fail "Slow2: the client got an answer: $out"
assert_between "$(client_t c6)" 0 1 "Slow2: seconds until refused (fanout_max reached)"
wait_close mux2 'ufrag="Slow2"'
assert_grep 'ufrag="Slow2" .*reason="ICE-TCP fan-out: fanout_max \(1\) fan-outs already in progress"' \
    "$T/mux2.log" "close line of Slow2"
assert_not_grep 'username=Slow2:' "$T/sa.log" "the refused fan-out reached sa"
assert_not_grep 'username=Slow2:' "$T/sb.log" "the refused fan-out reached sb"
assert_eq 1 "$(metric mux443_ufrag_fanouts_total)" "fan-outs started (fanout_max = 1)"
wait_exit slow1 $((FANOUT_TIMEOUT + 5))
assert_grep 'end=no-frame:EOF' "$T/slow1.log"
assert_grep 'ufrag="Slow1" .*reason="ICE-TCP fan-out: no server of backend silent took ufrag .Slow1. \(the others stayed silent; 0 refused or failed to connect, 0 answered with an error, 0 closed\)"' \
    "$T/mux2.log" "close line of Slow1"
# The slot is free again: the next fan-out starts.
start_bg slow3 "$PY" "$PEERS/client.py" 127.0.0.1 "$PM2" --ice-binding 'Slow3:cccc' --frame --timeout 15
wait_log sa 'silent frame len=[0-9]+ username=Slow3:cccc ' 10
wait_log sb 'silent frame len=[0-9]+ username=Slow3:cccc ' 10
wait_exit slow3 $((FANOUT_TIMEOUT + 5))
assert_eq 2 "$(metric mux443_ufrag_fanouts_total)" "fan-outs started in mux2"
assert_eq 3 "$(metric mux443_ufrag_fanout_failures_total)" "fan-out failures in mux2"
stop_mux mux2

log "6. only well-formed ufrags (RFC 8445 ice-chars) fan out and are cached: they come from clients"
# A server that answers every Binding request with a success: it "owns" any ufrag.
PM3=$(free_port)
PA3=$(free_port)
Q3=$(free_port)
start_bg anyown "$PY" "$PEERS/ice_tcp.py" anyown "$Q3"
cat >"$T/mux3.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM3
admin = 127.0.0.1:$PA3

[backend any]
balance = ufrag
server = 127.0.0.1:$Q3

[route]
ice-tcp = any
INI
wait_ready anyown
start_mux mux3 "$T/mux3.ini"
ADMIN=127.0.0.1:$PA3
PM=$PM3
out=$(ice c7 'Bad"q\x01:cli7')
[[ -z $out ]] || fail "a malformed ufrag was fanned out: $out"
assert_eq 1 "$(metric 'mux443_ufrag_fanout_refused_total{reason="bad_username"}')" \
    "a malformed ufrag is refused, not fanned out"
out=$(ice c8 'WellFormed+1:cli8')
assert_contains "$out" "type=0x0101" "a well-formed ufrag is relayed"
assert_eq 1 "$(metric mux443_ufrag_fanouts_total)" "only the well-formed one went through a fan-out"
ufrag_list >/dev/null # GET /ufrags is valid JSON
assert_eq "127.0.0.1:$Q3" "$(ufrag_field 'WellFormed+1' server)" "the well-formed ufrag is cached"
assert_not_contains "$HTTP_BODY" 'Bad' "the malformed ufrag is not in the table"
stop_mux mux3
