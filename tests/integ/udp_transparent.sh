#!/usr/bin/env bash
# UDP on 443, transparent mode (udp_transparent = yes): mux443 sends a flow's datagrams to
# coturn from the client's own address and port, so coturn sees the real client: its
# Binding answer (XOR-MAPPED-ADDRESS) is the client's address, and its log names the
# client's address for the allocations of turnutils_uclient. After a reload with
# udp_transparent = no, a new flow shows mux443's address instead (the control).
#
# Network (all inside the test's own namespaces): the client lives in a second network
# namespace, joined to ours by a veth pair: client 10.99.0.2 (vc) — 10.99.0.1 (vm: mux443
# and coturn). The host routing transparent mode needs, as an operator sets it up for a
# backend on the same host (README "UDP on 443"): coturn's answers to the client's
# address must be delivered locally (to mux443's transparent socket), not sent out:
#   ip rule add from 10.99.0.1 ipproto udp sport PT lookup 100
#   ip route add local 0.0.0.0/0 dev lo table 100
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

need_coturn
command -v nsenter >/dev/null || { log "SKIP: no nsenter"; exit 77; }
PM=$(free_port)
PT=$(free_port)
PA=$(free_port)
start_bg cns unshare --net -- bash -c 'echo ready; exec sleep 300'
wait_log cns '^ready' 10
CNS=/proc/$(pid_of cns)/ns/net
in_client() { nsenter --net="$CNS" -- "$@"; }
{ ip link add vm type veth peer name vc && ip link set vc netns "$(pid_of cns)" &&
    ip addr add 10.99.0.1/24 dev vm && ip link set vm up &&
    in_client ip addr add 10.99.0.2/24 dev vc && in_client ip link set vc up &&
    in_client ip link set lo up; } || fail "cannot build the client's namespace"
{ ip rule add from 10.99.0.1 ipproto udp sport "$PT" lookup 100 &&
    ip route add local 0.0.0.0/0 dev lo table 100; } || fail "cannot set up policy routing"

start_coturn turn "$PT" --listening-ip=10.99.0.1
conf() {
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 10.99.0.1:$PM
udp = yes
udp_transparent = $1
workers = 2
admin = 127.0.0.1:$PA

[backend turn]
server = 10.99.0.1:$PT

[route]
stun = turn
INI
}
conf yes
wait_log turn "UDP listener opened on.*10\.99\.0\.1:$PT" 20
start_mux mux "$T/mux.ini"

# Binding: coturn answers with the address it saw, the client's own
rc=0
in_client timeout 10 turnutils_stunclient -p "$PM" 10.99.0.1 >"$T/stun.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "turnutils_stunclient exit status"
assert_grep 'UDP reflexive addr: 10\.99\.0\.2:[0-9]+' "$T/stun.log" "coturn saw the client's address"

# TURN/UDP: allocations and relayed data; coturn's sessions name the client's address
rc=0
in_client timeout 30 turnutils_uclient -y -n 10 -m 1 -l 200 -p "$PM" -u test -w secret \
    10.99.0.1 >"$T/uclient.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "turnutils_uclient exit status"
assert_grep 'Total lost packets 0 ' "$T/uclient.log" "no loss"
assert_grep 'tot_recv_msgs=[1-9]' "$T/uclient.log" "data relayed"
assert_grep 'ALLOCATE processed, success' "$T/turn.log" "coturn allocated"
# coturn logs a session's remote address when it closes it (lifetime 0, just after)
wait_log turn 'remote 10\.99\.0\.2:[0-9]+, reason' 15
assert_not_grep 'remote 10\.99\.0\.1:' "$T/turn.log"

# the control: without transparent mode coturn sees mux443's address
conf no
kill -HUP "$(pid_of mux)"
wait_log mux 'reload: .* loaded' 10
# (its exit status is not checked here: after the answer it sometimes waits for a
# second test's reply until the timeout; the answer is what this control is about)
in_client timeout 5 turnutils_stunclient -p "$PM" 10.99.0.1 >"$T/stun2.log" 2>&1 || true
assert_grep 'UDP reflexive addr: 10\.99\.0\.1:[0-9]+' "$T/stun2.log" "coturn saw mux443's address"
stop_mux mux
