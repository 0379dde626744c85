#!/usr/bin/env bash
# Hostile ICE-TCP fan-out (balance = ufrag). One client (127.0.0.2) opens 300
# connections with random ufrags and no MESSAGE-INTEGRITY, then 300 with
# MESSAGE-INTEGRITY, and holds them all; the pool has a silent server, so every fan-out
# that starts lasts fanout_timeout. Meanwhile:
#  - a registered ufrag (POST /ufrags) connects from 127.0.0.1 and is answered by its
#    server at once (a known ufrag never waits on fan-out capacity);
#  - another client (127.0.0.3) with an unknown ufrag still gets its own fan-out (the
#    flood holds only its own client's fanout_per_client = 4 slots).
# Then fanout_rate = 1 refuses most of five fan-outs started at once.
# The flood is refused by reason in /metrics: no_integrity for the first 300, per_client
# for the second (at most 4 fan-outs started for it). Prints the CPU mux443 spent on the
# flood and the legitimate session's connect time (figures, not assertions).
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ufrag_lib.sh
source "$INTEG_DIR/ufrag_lib.sh"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
P1=$(free_port)
P2=$(free_port)
ADMIN=127.0.0.1:$PA
ulimit -n 4096
start_bg own "$PY" "$PEERS/ice_tcp.py" own "$P1" --ufrag RegA,FoOther
start_bg sil "$PY" "$PEERS/ice_silent.py" sil "$P2"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = $ADMIN
workers = 2
fanout_timeout = 3s

[backend media]
balance = ufrag
server = 127.0.0.1:$P1, 127.0.0.1:$P2

[route]
ice-tcp = media
INI
wait_ready own
wait_ready sil
start_mux mux "$T/mux.ini"
MUXPID=$(pid_of mux)
admin_req POST /ufrags -H 'Content-Type: application/json' \
    -d "{\"ufrag\":\"RegA\",\"server\":\"127.0.0.1:$P1\",\"ttl\":300}"
expect_http 201 "" "register RegA"

ticks0=$(cpu_ticks "$MUXPID")

log "flood 1: 300 connections from 127.0.0.2, random ufrags, no MESSAGE-INTEGRITY"
start_bg flood1 "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PM" 300 --bind 127.0.0.2 --ice no-integrity
wait_log flood1 'ready flood opened=300 failed=0' 30
wait_count mux 'fan-out refused: no MESSAGE-INTEGRITY' 300 30
assert_eq 300 "$(metric 'mux443_ufrag_fanout_refused_total{reason="no_integrity"}')" \
    "refused: no_integrity"
assert_eq 0 "$(metric mux443_ufrag_fanouts_total)" "fan-outs started by flood 1"
assert_eq 0 "$(count_log sil 'silent accepted')" "connections the silent server got"

log "flood 2: 300 more from 127.0.0.2 with MESSAGE-INTEGRITY, held open"
start_bg flood2 "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PM" 300 --bind 127.0.0.2 --ice integrity
wait_log flood2 'ready flood opened=300 failed=0' 30
wait_count mux 'fan-out refused: fanout_per_client' 250 30

log "during the flood: the registered ufrag RegA from 127.0.0.1"
out=$(ice legit 'RegA:cli1' --timeout 10)
assert_contains "$out" "software=ice:own" "RegA answered by its server (client: $(cat "$T/legit.err"))"
assert_contains "$out" "txid-match=yes" "RegA: transaction id"
legit_t=$(client_t legit)
assert_between "$legit_t" 0 2.5 "RegA: seconds to the answer (must not wait for a fan-out)"

log "during the flood: an unknown ufrag from another client (127.0.0.3) fans out"
out=$(ice other 'FoOther:cli2' --bind 127.0.0.3 --timeout 10)
assert_contains "$out" "software=ice:own" "FoOther found by fan-out (client: $(cat "$T/other.err"))"

wait_count mux 'reason="ICE-TCP fan-out' 600 30
ticks1=$(cpu_ticks "$MUXPID")
per_client=$(metric 'mux443_ufrag_fanout_refused_total{reason="per_client"}')
started=$(metric mux443_ufrag_fanouts_total)
# Flood 2 gets at most fanout_per_client (4) fan-outs at once; each lasts fanout_timeout
# (3 s) because of the silent server, so nearly all of it is refused.
((per_client >= 250)) || fail "per_client refusals: $per_client (expected >= 250)"
((started <= 1 + 4 * 4)) || fail "fan-outs started: $started (expected <= 17)"
assert_eq 300 "$(metric 'mux443_ufrag_fanout_refused_total{reason="no_integrity"}')" \
    "refused: no_integrity at the end"
hz=$(getconf CLK_TCK)
log "FIGURES: flood of 600 connections: mux443 CPU $(((ticks1 - ticks0) * 1000 / hz)) ms" \
    "(user+system); registered session answered in ${legit_t}s;" \
    "fan-outs started: $started, refused per_client: $per_client"
stop flood1
stop flood2
stop_mux mux

log "fanout_rate = 1: five fan-outs from five clients at once, most refused (rate)"
PM2=$(free_port)
PA2=$(free_port)
sed -e "s/^listen = .*/listen = 127.0.0.1:$PM2/" -e "s/^admin = .*/admin = 127.0.0.1:$PA2/" \
    -e 's/^fanout_timeout = .*/fanout_rate = 1/' "$T/mux.ini" >"$T/mux2.ini"
start_mux mux2 "$T/mux2.ini"
ADMIN=127.0.0.1:$PA2
PM=$PM2
# Unknown ufrags (each a fan-out of its own), sent at once from five addresses.
pids=()
for i in 1 2 3 4 5; do
    ice "r$i" "RateUfrag$i:rate$i" --bind "127.0.2.$i" --timeout 5 >/dev/null &
    pids+=($!)
done
wait "${pids[@]}"
rate=$(metric 'mux443_ufrag_fanout_refused_total{reason="rate"}')
started=$(metric mux443_ufrag_fanouts_total)
((rate >= 2 && rate + started == 5)) || fail "fanout_rate = 1: $started started, $rate refused (rate)"
assert_grep 'fan-out refused: fanout_rate \(1 per second\) reached' "$T/mux2.log" "the refusal's reason"
stop_mux mux2
