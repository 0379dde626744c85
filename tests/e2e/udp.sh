#!/usr/bin/env bash
# Real Chromium over UDP on mux443's port: two relay-only RTCPeerConnections in one
# page allocate on a real coturn through mux443's UDP listener (`udp = yes`) with
# `turn:127.0.0.1:PORT?transport=udp`, and exchange data-channel messages through
# their relays. Proves that both selected pairs are relay/relay with relayProtocol
# "udp", that mux443 carried the TURN side of both flows (class=stun flow lines and
# its UDP metrics) and that coturn allocated for them. UDP_RELAY=kernel (ctest
# e2e_udp_kernel) routes the TURN side with relay = kernel: the call then goes through the
# UDP kernel path (ChannelData in the tc program, STUN in user space).
#
#   usage: udp.sh PATH/TO/mux443          (ctest: e2e_udp)
#
# The TURN URL uses the address, not a name: Chromium resolves a UDP TURN server's host
# name outside --host-resolver-rules (so turn.test would not resolve in the namespace).
# The page is served by a plain web server on 127.0.0.1 directly (a secure context:
# loopback), not through mux443: only the TURN traffic is under test here (browser.sh
# covers HTTPS). Network: a namespace holding only lo, as browser.sh. Needs chromium,
# node, npm, coturn, curl, ip, unshare, flock, python3; exits 77 (skipped) when one is
# missing or no namespace can be made, unless E2E_REQUIRED=1.
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# shellcheck source=tests/e2e/netns.sh
source "$E2E_DIR/netns.sh"
e2e_enter_netns udp "$@" -- node npm turnserver curl ip unshare flock

source "$E2E_DIR/../integ/lib.sh" "$@"
# shellcheck source=tests/e2e/driver.sh
source "$E2E_DIR/driver.sh"
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp

PM=$(free_port) # mux443: TCP and UDP
PA=$(free_port) # admin (metrics)
PT=$(free_port) # coturn, plain TURN (UDP used)
PW=$(free_port) # the page
start_coturn turn "$PT"
start_bg web "$PY" -u -m http.server "$PW" --bind 127.0.0.1 --directory "$E2E_DIR/page"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
workers = 2
admin = 127.0.0.1:$PA

[backend turn]
server = 127.0.0.1:$PT

[route]
stun = turn
INI
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    printf '[route turnk]\nclass = stun\nbackend = turn\nrelay = kernel\n' >>"$T/mux.ini"
fi
wait_log turn "UDP listener opened on|UDP.*127.0.0.1:$PT" 20
wait_log web "Serving HTTP on 127\.0\.0\.1 port $PW"
start_mux mux "$T/mux.ini"

run_driver 120 udp.mjs E2E_PAGE="http://127.0.0.1:$PW/" \
    E2E_TURN_URL="turn:127.0.0.1:$PM?transport=udp" E2E_TURN_USER=test E2E_TURN_PASS=secret

curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
# Two peer connections, each its own client socket: at least two TURN-side flows.
n=$(sed -nE 's/^mux443_udp_flows_total\{class="stun"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
((${n:-0} >= 2)) || fail "expected >= 2 UDP flows of class stun, got ${n:-none}"
assert_grep '^mux443_udp_flows_total\{class="ice-udp"\} 0$' "$T/metrics.txt" \
    "relay-only: nothing went to a media side"
n=$(count_log turn 'ALLOCATE processed, success')
((n >= 2)) || fail "coturn: expected >= 2 successful allocations, got $n"
assert_grep 'CHANNEL_BIND processed, success|CREATE_PERMISSION processed, success' "$T/turn.log" \
    "coturn: permissions or channels for the peers"
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    n=$(sed -nE 's/^mux443_udp_kernel_total\{result="kernel"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
    ((${n:-0} >= 2)) || fail "expected >= 2 flows in the kernel, got ${n:-none}"
    assert_grep '^mux443_udp_kernel_total\{result="fallback"\} 0$' "$T/metrics.txt"
fi
stop_mux mux
n=$(count_log mux 'udp flow=[0-9]+ client=127\.0\.0\.1:[0-9]+ listener=main class=stun ufrag=- route=(stun|turnk) backend=turn server=127\.0\.0\.1:'"$PT"' dgrams_in=[1-9][0-9]* bytes_in=[1-9][0-9]* dgrams_out=[1-9][0-9]* ')
((n >= 2)) || fail "expected >= 2 class=stun UDP flow lines with traffic both ways, got $n"
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    # the call's ChannelData crossed the kernel: the close lines count more than user space
    user_in=$(sed -nE 's/^mux443_udp_datagrams_total\{direction="in"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
    closed_in=$(grep -o 'dgrams_in=[0-9]*' "$T/mux.log" | awk -F= '{ s += $2 } END { print s }')
    ((closed_in > user_in)) || fail "no datagram crossed the kernel ($closed_in closed, $user_in in user space)"
fi
