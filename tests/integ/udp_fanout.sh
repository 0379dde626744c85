#!/usr/bin/env bash
# UDP on 443, fan-out (README "UDP on 443"): an ICE check whose server ufrag no prefix and
# no registration names goes to every media server of the pool; the one that answers
# with a Binding success takes the flow (its answer reaches the client, the others' 401s
# do not), the ufrag is learnt (GET /ufrags: source fanout) and the next flow with it
# hits the table without a fan-out. A fan-out nobody wins ends at fanout_timeout
# (dropped, counted, logged); while it runs, fanout_max = 1 refuses a second one; a check
# without MESSAGE-INTEGRITY is not fanned out at all. Peers:
# tests/peers/udp_flows.py (ice: an ICE-lite server owning a ufrag prefix; mute).
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PA=$(free_port)
P1=$(free_port)
P2=$(free_port)
PS=$(free_port)
start_bg ice_a "$PY" "$PEERS/udp_flows.py" ice A "$P1" FanA
start_bg ice_b "$PY" "$PEERS/udp_flows.py" ice B "$P2" FanB
start_bg silent "$PY" "$PEERS/udp_flows.py" mute "$PS"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
udp_io = ${UDP_IO:-auto}
workers = 2
admin = 127.0.0.1:$PA
fanout_max = 1
fanout_timeout = 2s
log_level = debug

[backend media]
balance = ufrag
server = 127.0.0.1:$P1, 127.0.0.1:$P2, 127.0.0.1:$PS

[route]
ice-tcp = media
INI
for p in ice_a ice_b silent; do wait_log "$p" '^ready' 10; done
start_mux mux "$T/mux.ini"

rc=0
timeout 20 "$PY" - "$PM" "$PEERS" <<'PYEOF' >"$T/client.log" 2>&1 || rc=$?
import socket, sys, time
sys.path.insert(0, sys.argv[2])
from udp_flows import binding, RTP
mux = ("127.0.0.1", int(sys.argv[1]))
def sock(timeout=3.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    return s
def won(s, user, tag):
    msg = binding(user, integrity=True)
    s.sendto(msg, mux)
    ans = s.recv(2000)
    assert ans[:2] == b"\x01\x01" and ans[8:20] == msg[8:20], f"{user}: Binding success, got {ans!r}"
    s.sendto(RTP, mux)
    got = s.recv(2000)
    assert got == tag + b":" + RTP, f"{user}: media to {tag}, got {got!r}"
    print(f"{user}: won by {tag.decode()}", flush=True)
def silent(s, user, integrity=True):
    s.settimeout(0.5)
    s.sendto(binding(user, integrity), mux)
    try:
        sys.exit(f"{user}: answered {s.recv(2000)!r}")
    except socket.timeout:
        print(f"{user}: no answer", flush=True)
won(sock(), "FanA:cli1", b"A")
won(sock(), "FanB:cli2", b"B")
won(sock(), "FanA:cli3", b"A")        # learnt: a table hit, no fan-out
silent(sock(), "FanA7xyz:cli7", False) # no MESSAGE-INTEGRITY: not a browser's check
t0 = time.monotonic()
silent(sock(), "Nobody01:cli4")       # A and B refuse, the silent one holds it 2 s
silent(sock(), "FanA2xyz:cli5")       # fanout_max = 1: refused while the first runs
assert time.monotonic() - t0 < 1.9, "the checks took too long to show the bound"
time.sleep(2.5)                       # the first fan-out has timed out
won(sock(), "FanA3xyz:cli6", b"A")
print("client: ok", flush=True)
PYEOF
cat "$T/client.log" >&2
assert_eq 0 "$rc" "fan-out client"
curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
curl -fsS "http://127.0.0.1:$PA/ufrags" >"$T/ufrags.json"
assert_grep '^mux443_ufrag_fanouts_total 4$' "$T/metrics.txt" "FanA, FanB, Nobody01, FanA3xyz fanned out"
assert_grep '^mux443_ufrag_fanout_failures_total 3$' "$T/metrics.txt" \
    "Nobody01 (timeout), FanA2xyz (fanout_max), FanA7xyz (refused)"
assert_grep '^mux443_ufrag_fanout_refused_total\{reason="no_integrity"\} 1$' "$T/metrics.txt"
assert_grep '^mux443_ufrag_fanout_refused_total\{reason="fanout_max"\} 1$' "$T/metrics.txt"
assert_grep "^mux443_ufrag_fanout_wins_total\\{backend=\"media\",server=\"127\\.0\\.0\\.1:$P1\"\\} 2$" "$T/metrics.txt"
assert_grep "^mux443_ufrag_fanout_wins_total\\{backend=\"media\",server=\"127\\.0\\.0\\.1:$P2\"\\} 1$" "$T/metrics.txt"
assert_grep '^mux443_udp_flows_total\{class="ice-udp"\} 4$' "$T/metrics.txt"
assert_grep '^mux443_udp_dropped_total\{reason="unroutable"\} 3$' "$T/metrics.txt"
assert_grep '"ufrag":"FanA","backend":"media","server":"127\.0\.0\.1:'"$P1"'","source":"fanout"' "$T/ufrags.json"
assert_grep '"ufrag":"FanB","backend":"media","server":"127\.0\.0\.1:'"$P2"'","source":"fanout"' "$T/ufrags.json"
assert_grep "udp flow=[0-9]+ fan-out: 127\\.0\\.0\\.1:$P1 owns ufrag 'FanA'" "$T/mux.log"
assert_grep "fan-out: no server of backend media took ufrag 'Nobody01' \\(fanout_timeout passed; 2 answered with an error\\)" "$T/mux.log"
assert_grep 'udp: fan-out refused: fanout_max fan-outs already in progress' "$T/mux.log"
# The foreign servers saw the checks they lost (A saw FanB's, B saw FanA's).
assert_grep '^binding FanB:cli2 foreign' "$T/ice_a.log"
assert_grep '^binding FanA:cli1 foreign' "$T/ice_b.log"
assert_not_grep '^binding FanA:cli3' "$T/ice_b.log"
stop_mux mux
assert_udp_io mux
assert_grep 'class=ice-udp ufrag=FanB route=ice-tcp backend=media server=127\.0\.0\.1:'"$P2"' dgrams_in=2 ' "$T/mux.log"
