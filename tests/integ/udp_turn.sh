#!/usr/bin/env bash
# UDP on 443 with a real coturn: mux443 takes UDP on its listener (udp = yes) and relays
# to coturn's plain UDP port. turnutils_stunclient's Binding is answered through it, and
# turnutils_uclient over UDP (two allocations relaying to each other) exchanges its
# messages without loss. The flows are logged at their end (shutdown) and counted.
# UDP_RELAY=kernel (ctest integ_udp_turn_kernel) puts the route on the kernel path
# (relay = kernel): the allocations' ChannelData then crosses the tc program both ways,
# and the close line still counts it.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

need_coturn
PM=$(free_port)
PT=$(free_port)
PA=$(free_port)
start_coturn turn "$PT"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
workers = 2
admin = 127.0.0.1:$PA

[backend turn]
server = 127.0.0.1:$PT

[route turn]
class = stun
backend = turn
relay = ${UDP_RELAY:-user}
INI
wait_log turn "UDP listener opened on|UDP.*127.0.0.1:$PT" 20
start_mux mux "$T/mux.ini"

# STUN Binding (no USERNAME) through mux443's UDP port: coturn answers
rc=0
timeout 10 turnutils_stunclient -p "$PM" 127.0.0.1 >"$T/stun.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "turnutils_stunclient exit status"
assert_grep 'UDP reflexive addr: 127\.0\.0\.1:' "$T/stun.log" "Binding answered"

# TURN/UDP: allocations, permissions, channels and relayed data, over UDP only
rc=0
timeout 40 turnutils_uclient -y -n 20 -m 2 -l 200 -p "$PM" -u test -w secret \
    127.0.0.1 >"$T/uclient.log" 2>&1 || rc=$?
curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
assert_eq 0 "$rc" "turnutils_uclient exit status"
assert_grep 'tot_recv_msgs=[1-9]' "$T/uclient.log" "uclient received data through the relay"
assert_grep 'Total lost packets 0 ' "$T/uclient.log" "no loss on loopback"
assert_grep 'incoming packet ALLOCATE processed, success' "$T/turn.log" "coturn allocated"

assert_grep '^mux443_udp_flows_total\{class="stun"\} [1-9]' "$T/metrics.txt"
assert_grep '^mux443_udp_datagrams_total\{direction="in"\} [1-9]' "$T/metrics.txt"
assert_grep '^mux443_udp_datagrams_total\{direction="out"\} [1-9]' "$T/metrics.txt"
assert_grep '^mux443_udp_dropped_total\{reason="malformed"\} 0$' "$T/metrics.txt" \
    "ChannelData on coturn's RFC 5766 channel numbers is relayed"
assert_grep '^mux443_udp_table_flows [1-9]' "$T/metrics.txt" "flows still open (idle 2m)"
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    assert_grep '^mux443_udp_kernel_total\{result="kernel"\} [1-9]' "$T/metrics.txt" \
        "the flows entered the kernel"
    assert_grep '^mux443_udp_kernel_total\{result="fallback"\} 0$' "$T/metrics.txt"
fi
stop_mux mux
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    # the data messages crossed the kernel: the close lines count them, user space did not
    user_in=$(awk '$1 == "mux443_udp_datagrams_total{direction=\"in\"}" {print $2}' "$T/metrics.txt")
    sent=$(grep -o 'tot_send_msgs=[0-9]*, tot_recv_msgs=[0-9]*$' "$T/uclient.log" | tail -1 |
        sed -E 's/tot_send_msgs=([0-9]+),.*/\1/')
    closed_in=$(grep -o 'dgrams_in=[0-9]*' "$T/mux.log" | awk -F= '{ s += $2 } END { print s }')
    ((closed_in - user_in >= sent && sent > 0)) ||
        fail "the kernel carried $((closed_in - user_in)) client datagrams, uclient sent $sent"
fi
assert_grep 'udp flow=[0-9]+ client=127\.0\.0\.1:[0-9]+ listener=main class=stun ufrag=- route=turn backend=turn server=127\.0\.0\.1:'"$PT"' dgrams_in=[1-9][0-9]* bytes_in=[1-9][0-9]* dgrams_out=[1-9][0-9]* bytes_out=[1-9][0-9]* dur=[0-9.]+ reason="shutdown"' "$T/mux.log" "flow close line"
