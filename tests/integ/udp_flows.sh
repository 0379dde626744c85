#!/usr/bin/env bash
# UDP on 443, flows (python peers, tests/peers/udp_flows.py): one client socket talks to
# a media server (routed by the server ufrag's ufrag_prefix) and to the TURN side at
# once; a media server's own Binding request is answered back to it by transaction id;
# datagrams of every first-byte range that cannot open a flow are dropped and counted;
# a flood of new flows from many source ports fills the table (refused and counted)
# while the established flow keeps flowing; after SIGHUP (which moves the ufrag prefix
# to another server) the flow keeps its server and new flows take the new one; flows of
# a route with a short idle_timeout end with reason "idle timeout", freeing their slots;
# a ufrag registered through /ufrags routes a new flow; an unknown one in a check
# without MESSAGE-INTEGRITY is not fanned out (udp_fanout.sh): dropped, counted.
# --explain --udp routes captured first datagrams as the relay does.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$(dirname "$0")/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
PMA=$(free_port)
PMB=$(free_port)
PT=$(free_port)
start_bg media_a "$PY" "$PEERS/udp_flows.py" backend A "$PMA"
start_bg media_b "$PY" "$PEERS/udp_flows.py" backend B "$PMB"
start_bg turn "$PY" "$PEERS/udp_flows.py" backend T "$PT"
# conf PREFIX_A PREFIX_B: the configuration with those ufrag prefixes on A and B.
conf() {
    cat <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
udp_io = ${UDP_IO:-auto}
workers = 2
admin = 127.0.0.1:$PA
udp_max_flows = 40
udp_new_flows_per_sec = 0

[backend media]
balance = ufrag
server = 127.0.0.1:$PMA ufrag_prefix=$1
server = 127.0.0.1:$PMB ufrag_prefix=$2

[backend turn]
server = 127.0.0.1:$PT

[route turn]
class = stun
backend = turn
idle_timeout = 2s

[route]
ice-tcp = media
INI
}
conf dpt zz >"$T/mux.ini"
conf zz dpt >"$T/mux-new.ini"

# --explain --udp decides as the relay does: captured first datagrams
out=$("$MUX443" --explain --udp -c "$T/mux.ini" <"$VECTORS/turnutils-uclient-udp.bin")
assert_contains "$out" "side      turn"
assert_contains "$out" "route     turn ($T/mux.ini:"
out=$(tail -c +3 "$VECTORS/chromium-ice-tcp-binding.bin" |
    "$MUX443" --explain --udp -c "$T/mux.ini")
assert_contains "$out" "ufrag     dptM"
assert_contains "$out" "server    127.0.0.1:$PMA (ufrag_prefix=dpt)"
out=$(printf '\x80\x6f\0\1\0\0\0\0\0\0\0\0' | "$MUX443" --explain --udp -c "$T/mux.ini")
assert_contains "$out" "kind      rtp"
assert_contains "$out" "route     - (dropped: only a STUN request opens a flow"
wait_ready media_a
wait_ready media_b
wait_ready turn
start_mux mux "$T/mux.ini"
# each worker's UDP socket has a 4 MiB receive buffer (the kernel reports it doubled),
# not the ~208 KiB default that bursts of media overflow
rb=$(ss -Hulmn "sport = :$PM" | grep -o 'rb[0-9]*' | sort -u | paste -sd' ')
assert_eq "rb8388608" "$rb" "receive buffer of the UDP listening sockets"

rc=0
timeout 40 "$PY" "$PEERS/udp_flows.py" scenario "$PM" "$(pid_of mux)" "$T/mux.log" \
    "$T/mux.ini" "$T/mux-new.ini" 200 >"$T/scenario.log" 2>&1 || rc=$?
cat "$T/scenario.log" >&2
assert_eq 0 "$rc" "scenario exit status"
assert_grep '^scenario done' "$T/scenario.log"

curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
for reason in table_full malformed not_first quic; do
    assert_grep "^mux443_udp_dropped_total\\{reason=\"$reason\"\\} [1-9]" "$T/metrics.txt" \
        "drops counted as $reason"
done
assert_grep '^mux443_udp_flows_total\{class="ice-udp"\} 3$' "$T/metrics.txt"
assert_grep '^mux443_udp_table_slots 40$' "$T/metrics.txt"

# the TURN-side flows of the flood idle out after the route's 2 s, in both workers'
# tables (a new flow may land on either worker), leaving the three media flows (one of
# which also has a TURN side); then new flows fit
wait_metric "$PA" 'mux443_udp_table_flows' -le 3 10
assert_grep 'udp flow=[0-9]+ .*class=stun .*route=turn .*reason="idle timeout"' "$T/mux.log"
assert_grep 'reload: .* loaded' "$T/mux.log"
# a ufrag registered through /ufrags routes a new flow; an unknown one (in a check
# without MESSAGE-INTEGRITY: not fanned out, see udp_fanout.sh) is dropped
curl -fsS -H 'Content-Type: text/x-mux443-ufrags' -d "RegUdp01 127.0.0.1:$PMA 120" \
    "http://127.0.0.1:$PA/ufrags" >/dev/null
rc=0
timeout 10 "$PY" - "$PM" "$PEERS" <<'PYEOF' >"$T/after.log" 2>&1 || rc=$?
import socket, sys
sys.path.insert(0, sys.argv[2])
from udp_flows import binding
mux = ("127.0.0.1", int(sys.argv[1]))
def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    return s
s = sock()
msg = binding()
s.sendto(msg, mux)
assert s.recv(2000) == b"T:" + msg, "a new TURN-side flow after the flood idled out"
s = sock()
msg = binding("RegUdp01:cli4")
s.sendto(msg, mux)
assert s.recv(2000) == b"A:" + msg, "registered ufrag RegUdp01 routes to A"
s = sock()
s.settimeout(0.5)
s.sendto(binding("Nobody99:cli5"), mux)
try:
    s.recv(2000)
    sys.exit("an unknown ufrag was answered")
except socket.timeout:
    pass
print("after: ok")
PYEOF
cat "$T/after.log" >&2
assert_eq 0 "$rc" "new flows after the flood: TURN side, registered ufrag, unknown ufrag"
curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics2.txt"
assert_grep '^mux443_udp_dropped_total\{reason="unroutable"\} [1-9]' "$T/metrics2.txt" \
    "an ICE check for a ufrag nobody owns"
assert_grep '^mux443_ufrag_fanout_refused_total\{reason="no_integrity"\} [1-9]' "$T/metrics2.txt"
stop_mux mux
assert_udp_io mux
# the media flow of socket A: one close line per side, with its ufrag and server
assert_grep 'udp flow=[0-9]+ client=127\.0\.0\.1:[0-9]+ listener=main class=ice-udp ufrag=dptA1234 route=ice-tcp backend=media server=127\.0\.0\.1:'"$PMA"' dgrams_in=[4-9] .*reason="shutdown"' "$T/mux.log"
assert_grep 'class=ice-udp ufrag=dptC5678 route=ice-tcp backend=media server=127\.0\.0\.1:'"$PMB" "$T/mux.log"
assert_grep 'class=ice-udp ufrag=RegUdp01 route=ice-tcp backend=media server=127\.0\.0\.1:'"$PMA" "$T/mux.log"
