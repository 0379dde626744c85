#!/usr/bin/env bash
# TURN over TCP: a real coturn behind mux443 on its --tcp-proxy-port (it then reads a
# PROXY v2 header), backend proxy_protocol = v2. turnutils_uclient -t from 127.0.0.2
# through mux443 allocates and exchanges data, and coturn logs 127.0.0.2 as the client:
# the PROXY v2 header mux443 sent carried the real client address.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

need_coturn
PM=$(free_port)
PT=$(free_port)
PP=$(free_port)
start_coturn turn "$PT" --tcp-proxy-port="$PP"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend turn]
server = 127.0.0.1:$PP
proxy_protocol = v2

[route]
stun = turn
INI
wait_log turn "TCP listener opened on : 127.0.0.1:$PP" 20
start_mux mux "$T/mux.ini"

rc=0
timeout 40 turnutils_uclient -t -y -n 5 -m 1 -L 127.0.0.2 -p "$PM" -u test -w secret \
    127.0.0.1 >"$T/uclient.log" 2>&1 || rc=$?
assert_eq 0 "$rc" "turnutils_uclient exit status"
assert_grep 'tot_recv_msgs=[1-9]' "$T/uclient.log" "uclient received data through the relay"
assert_grep 'Total lost packets 0 ' "$T/uclient.log"
assert_grep 'incoming packet ALLOCATE processed, success' "$T/turn.log" "coturn allocated"
assert_grep 'remote 127\.0\.0\.2:[0-9]+' "$T/turn.log" "coturn saw the real client 127.0.0.2"
assert_not_grep 'remote 127\.0\.0\.1:[0-9]+, reason' "$T/turn.log" "coturn saw mux443's address"
assert_grep 'client=127\.0\.0\.2:[0-9]+ .*class=stun .*backend=turn server=127\.0\.0\.1:'"$PP" "$T/mux.log"
stop_mux mux
