#!/usr/bin/env bash
# UDP on 443, hostile: a flood of new flows from forged source addresses (raw sockets,
# thousands of sources over 10.0.0.0/8, a quarter of them in one /24) while an
# established flow (a media flow to server A) keeps flowing: every probe of the flow
# during the flood is answered. The counters say why the flood's flows were refused:
# per_prefix (the one /24) and table_full (the table fills before the rate bound
# bites: every flood flow is answered by its backend, so none idles out early); the
# table never holds more than udp_max_flows. Peers: tests/peers/udp_spoof.py, udp_flows.py backend.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PA=$(free_port)
PMA=$(free_port)
PT=$(free_port)
start_bg media_a "$PY" "$PEERS/udp_flows.py" backend A "$PMA"
start_bg turn "$PY" "$PEERS/udp_flows.py" backend T "$PT"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
workers = 2
admin = 127.0.0.1:$PA
udp_max_flows = 64
udp_flows_per_prefix = 8
udp_new_flows_per_sec = 100

[backend media]
balance = ufrag
server = 127.0.0.1:$PMA ufrag_prefix=dptA

[backend turn]
server = 127.0.0.1:$PT

[route]
ice-tcp = media
stun = turn
INI
wait_log media_a '^ready' 10
wait_log turn '^ready' 10
start_mux mux "$T/mux.ini"

rc=0
timeout 40 "$PY" - "$PM" "$PEERS" "$T/flood.done" <<'PYEOF' >"$T/client.log" 2>&1 &
import os, select, socket, sys, time
sys.path.insert(0, sys.argv[2])
from udp_flows import binding, RTP
mux = ("127.0.0.1", int(sys.argv[1]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def probe(data, want, what):
    for attempt in range(3):   # a datagram may be lost under the flood: retried, counted
        s.sendto(data, mux)
        r, _, _ = select.select([s], [], [], 1.0)
        if r:
            got = s.recv(65535)
            assert got == want, f"{what}: got {got[:40]!r}"
            return attempt
    sys.exit(f"{what}: no answer in 3 tries")
b = binding("dptA1234:cli1")
probe(b, b"A:" + b, "the call's ICE check")
print("established", flush=True)
n = retries = 0
while not os.path.exists(sys.argv[3]) or n < 20:   # through the whole flood
    retries += probe(RTP, b"A:" + RTP, f"media datagram {n}")
    n += 1
    time.sleep(0.01)
print(f"call: {n} media datagrams answered during the flood, {retries} retried", flush=True)
PYEOF
CLIENT=$!
wait_log_file() { local deadline=$((SECONDS + 10)); until grep -q "$1" "$2"; do ((SECONDS < deadline)) || fail "no /$1/ in $2"; sleep 0.05; done; }
wait_log_file established "$T/client.log"
"$PY" "$PEERS/udp_spoof.py" flood "$PM" 20000 >"$T/flood.log" 2>&1 || fail "flood failed (raw sockets need root in the namespace)"
touch "$T/flood.done"
wait "$CLIENT" || rc=$?
cat "$T/client.log" >&2
assert_eq 0 "$rc" "the established call kept flowing during the flood"
assert_grep '^sent 20000$' "$T/flood.log"
curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
for reason in per_prefix table_full; do
    assert_grep "^mux443_udp_dropped_total\\{reason=\"$reason\"\\} [1-9]" "$T/metrics.txt" \
        "flood flows refused: $reason"
done
n=$(sed -nE 's/^mux443_udp_table_flows ([0-9]+)$/\1/p' "$T/metrics.txt")
((n <= 64)) || fail "the table holds $n flows, more than udp_max_flows"
opened=$(sed -nE 's/^mux443_udp_flows_total\{class="stun"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
((opened < 20000 / 10)) || fail "$opened flood flows opened: the bounds did not hold"
stop_mux mux
assert_grep 'class=ice-udp ufrag=dptA1234 route=ice-tcp backend=media server=127\.0\.0\.1:'"$PMA"' dgrams_in=[0-9]{2,} ' "$T/mux.log"
