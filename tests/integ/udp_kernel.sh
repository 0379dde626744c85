#!/usr/bin/env bash
# The UDP kernel path (relay = kernel on UDP routes, README "UDP on 443"), with real peers
# (tests/peers/udp_kernel.py): a media server and a TURN server, one client socket
# talking to both.
#  1. loopback client: the first datagrams go through user space, then 200 RTP datagrams
#     and 200 ChannelData datagrams cross both ways byte-exact and in order while user
#     space relays none of them (its datagram counters stay put, the kernel gauge says
#     2 sides); the media server's own STUN request reaches the client (through user
#     space) and the answer goes back to it by transaction id; the idle timeout ends the
#     flow and takes its entries out (the next RTP is not relayed: no flow), a Binding
#     opens a new flow; the close lines count every datagram, the kernel's included;
#     a QUIC flow (route class quic): short headers, greased ones starting in STUN's range
#     too, cross the kernel both ways; the safety net: with mux443 stopped (SIGSTOP) the
#     kernel relays until the entry's deadline (which the idle sweep pushes on) passes,
#     then datagrams wait for user space, which relays them once it runs again;
#  2. a remote client in another network namespace, through a veth pair: the answers
#     leave by the device the route names (bpf_redirect_neigh); with lo's accept_local and
#     route_localnet its datagrams to the 127.0.0.1 servers enter through lo's input, so
#     the kernel carries both ways;
#     datagrams larger than the veth's MTU go through user space (fragmented), smaller
#     ones still through the kernel; and a loopback client whose media server is in the other namespace: its datagrams
#     leave by the veth, the answers come into lo's input;
#  3. the remote client without lo's settings: the answers still cross the kernel, the client's
#     datagrams go through user space, and nothing is lost;
#  3b. IPv6 (servers on [::1], a [::] listener, lo's IPv4 settings off): a client on ::1,
#     then one in the other namespace over the veth (fd31::/64): both sides of each cross
#     the kernel both ways byte-exact while user space's counters do not move (the
#     remote client's datagrams enter through lo's input, which IPv6 allows as it is);
#  4. fallback: started without CAP_BPF/CAP_NET_ADMIN, one line says why, the flows are
#     relayed in user space, counted as fallback;
#  5. user = nobody: no capability left, the flows still enter the kernel; with
#     kernel_relay_devices = lo the program is on lo only.
#  And mux443 -t names the line of a kernel_relay_devices item that is no device name.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

[[ -n ${MUX443_IN_NETNS:-} ]] || { log "SKIP: needs its own network namespace"; exit 77; }

N=200
PM=$(free_port)
PA=$(free_port)
PMS=$(free_port)
PTS=$(free_port)
PQS=$(free_port)

# The client's namespace, joined to ours by a veth pair, set up before mux443 starts
# (kernel_relay_devices = auto takes the devices up at start).
start_bg childns unshare --net sleep 600
CHILD=$(pid_of childns)
for _ in $(seq 100); do
    [[ $(readlink "/proc/$CHILD/ns/net") != $(readlink /proc/self/ns/net) ]] && break
    sleep 0.02
done
ip link add mk0 type veth peer name mk1
ip link set mk1 netns "$CHILD"
ip addr add 10.231.0.1/24 dev mk0
ip link set mk0 up
nsenter -t "$CHILD" -n sh -c 'ip link set lo up; ip addr add 10.231.0.2/24 dev mk1; ip link set mk1 up'

start_bg media "$PY" "$PEERS/udp_kernel.py" backend 127.0.0.1 "$PMS"
start_bg turn "$PY" "$PEERS/udp_kernel.py" backend 127.0.0.1 "$PTS"
start_bg quic "$PY" "$PEERS/udp_kernel.py" backend 127.0.0.1 "$PQS"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 0.0.0.0:$PM
udp = yes
workers = 2
admin = 0.0.0.0:$PA

[backend media]
server = 127.0.0.1:$PMS

[backend turn]
server = 127.0.0.1:$PTS

[route media]
class = ice-tcp
backend = media
relay = kernel
idle_timeout = 2s

[route turn]
class = stun
backend = turn
relay = kernel
idle_timeout = 2s

[backend quic]
server = 127.0.0.1:$PQS

[route h3]
class = quic
backend = quic
relay = kernel
INI
wait_ready media
wait_ready turn
wait_ready quic


# scenario NAME HOST EXPECT [nsenter...]: the client side (udp_kernel.py client).
scenario() {
    local name=$1 host=$2 expect=$3 rc=0
    shift 3
    timeout 50 "$@" "$PY" "$PEERS/udp_kernel.py" client "$host" "$PM" "$N" "${ADMIN_HOST:-$host}:$PA" "$expect" \
        >"$T/$name.log" 2>&1 || rc=$?
    cat "$T/$name.log" >&2
    assert_eq 0 "$rc" "$name: client exit status"
    assert_grep '^client done' "$T/$name.log"
}

# close_counts MUX CLASS ROUTE: "in out" datagrams of the first close line of that side.
close_counts() {
    grep -E "udp flow=[0-9]+ .*class=$2 .*route=$3 .*reason=\"idle timeout\"" "$T/$1.log" | head -1 |
        sed -E 's/.* dgrams_in=([0-9]+) .* dgrams_out=([0-9]+) .*/\1 \2/'
}

printf '[mux443]\nlisten = 127.0.0.1:%s\nudp = yes\nkernel_relay_devices = lo, %s\n[backend b]\nserver = 127.0.0.1:%s\n[route]\nstun = b\n' \
    "$PM" averyveryverylongname0 "$PTS" >"$T/bad.ini"
rc=0
"$MUX443" -t -c "$T/bad.ini" >"$T/bad.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t refuses a device name that cannot be one"
assert_grep ':4: \[mux443\] kernel_relay_devices: not a device name' "$T/bad.out"

log "1. loopback client: the kernel carries both ways"
start_mux mux "$T/mux.ini"
assert_grep 'udp kernel path ready on .*lo' "$T/mux.log" "the program is on lo"
assert_grep 'udp kernel path ready on .*mk0' "$T/mux.log" "the program is on the veth"
scenario loop 127.0.0.1 kernel
# media: Binding, N RTP, 16 RTP, DTLS, the STUN answer in; Binding success, N + 16
# echoes, the STUN request, the DTLS echo, RESP-OK out. TURN: Binding + N ChannelData.
assert_eq "$((N + 19)) $((N + 20))" "$(close_counts mux ice-udp media)" "media close line counts"
assert_eq "$((N + 1)) $((N + 1))" "$(close_counts mux stun turn)" "turn close line counts"
metrics "$PA" "$T/m1.prom"
assert_eq 0 "$(mval "$T/m1.prom" 'mux443_udp_kernel_total{result="fallback"}')" "no fallback"
assert_eq 3 "$(mval "$T/m1.prom" 'mux443_udp_kernel_total{result="kernel"}')" "three sides entered"
# the kernel's: media N + 16 RTP and the DTLS in, their echoes and RESP-OK out; TURN N each way
assert_eq "$((4 * N + 35))" "$(mval "$T/m1.prom" mux443_udp_kernel_datagrams_total)" \
    "datagrams the kernel carried"
rc=0
timeout 30 "$PY" "$PEERS/udp_kernel.py" quic 127.0.0.1 "$PM" "127.0.0.1:$PA" \
    "$VECTORS/chromium-quic-initial-udp.bin" >"$T/quic.log" 2>&1 || rc=$?
cat "$T/quic.log" >&2
assert_eq 0 "$rc" "quic: client exit status"
assert_grep '^quic done' "$T/quic.log"
rc=0
timeout 40 "$PY" "$PEERS/udp_kernel.py" hang 127.0.0.1 "$PM" "127.0.0.1:$PA" "$(pid_of mux)" \
    >"$T/hang.log" 2>&1 || rc=$?
cat "$T/hang.log" >&2
assert_eq 0 "$rc" "hang: client exit status"
assert_grep '^hang done' "$T/hang.log"
stop_mux mux

log "2. remote client through a veth pair, lo accepting our own source address"
sysctl -qw net.ipv4.conf.lo.accept_local=1 net.ipv4.conf.lo.route_localnet=1
start_mux muxr "$T/mux.ini"
scenario remote 10.231.0.1 kernel nsenter -t "$CHILD" -n
assert_eq "$((N + 19)) $((N + 20))" "$(close_counts muxr ice-udp media)" "media close line counts"
metrics "$PA" "$T/m2.prom"
assert_eq "$((4 * N + 35))" "$(mval "$T/m2.prom" mux443_udp_kernel_datagrams_total)" \
    "datagrams the kernel carried"
# datagrams the veth's MTU does not let out whole are left to user space (a redirect
# does not fragment): nothing lost, and the small ones still cross the kernel
ip link set mk0 mtu 576
nsenter -t "$CHILD" -n ip link set mk1 mtu 576
rc=0
timeout 30 nsenter -t "$CHILD" -n "$PY" "$PEERS/udp_kernel.py" big 10.231.0.1 "$PM" "10.231.0.1:$PA" \
    >"$T/big.log" 2>&1 || rc=$?
cat "$T/big.log" >&2
assert_eq 0 "$rc" "big: client exit status"
assert_grep '^big done' "$T/big.log"
ip link set mk0 mtu 1500
nsenter -t "$CHILD" -n ip link set mk1 mtu 1500
stop_mux muxr

log "2b. loopback client, media server in the other namespace"
PRS=$(free_port)
start_bg rmedia nsenter -t "$CHILD" -n "$PY" "$PEERS/udp_kernel.py" backend 10.231.0.2 "$PRS"
wait_ready rmedia
sed "s/^server = 127.0.0.1:$PMS\$/server = 10.231.0.2:$PRS/" "$T/mux.ini" >"$T/mux-rs.ini"
assert_grep "^server = 10.231.0.2:$PRS\$" "$T/mux-rs.ini"
start_mux muxrs "$T/mux-rs.ini"
scenario rserver 127.0.0.1 kernel
assert_eq "$((N + 19)) $((N + 20))" "$(close_counts muxrs ice-udp media)" "media close line counts"
stop_mux muxrs

log "3. remote client, lo's defaults: the client's datagrams through user space"
sysctl -qw net.ipv4.conf.lo.accept_local=0 net.ipv4.conf.lo.route_localnet=0
start_mux muxh "$T/mux.ini"
scenario half 10.231.0.1 half nsenter -t "$CHILD" -n
metrics "$PA" "$T/m3.prom"
assert_eq "$((2 * N + 18))" "$(mval "$T/m3.prom" mux443_udp_kernel_datagrams_total)" \
    "the kernel carried the answers only"
stop_mux muxh

log "3b. IPv6: a client on ::1, then one across the veth, lo's IPv4 settings off"
ip -6 addr add fd31::1/64 dev mk0 nodad
nsenter -t "$CHILD" -n ip -6 addr add fd31::2/64 dev mk1 nodad
PMS6=$(free_port)
PTS6=$(free_port)
start_bg media6 "$PY" "$PEERS/udp_kernel.py" backend ::1 "$PMS6"
start_bg turn6 "$PY" "$PEERS/udp_kernel.py" backend ::1 "$PTS6"
wait_ready media6
wait_ready turn6
sed -e "s/^listen = 0.0.0.0:$PM\$/listen = [::]:$PM/" \
    -e "s/^server = 127.0.0.1:$PMS\$/server = [::1]:$PMS6/" \
    -e "s/^server = 127.0.0.1:$PTS\$/server = [::1]:$PTS6/" "$T/mux.ini" >"$T/mux6.ini"
assert_grep "^server = \[::1\]:$PTS6\$" "$T/mux6.ini"
start_mux mux6 "$T/mux6.ini"
ADMIN_HOST=127.0.0.1 scenario loop6 ::1 kernel
assert_eq "$((N + 19)) $((N + 20))" "$(close_counts mux6 ice-udp media)" "IPv6 media close line counts"
assert_eq "$((N + 1)) $((N + 1))" "$(close_counts mux6 stun turn)" "IPv6 turn close line counts"
metrics "$PA" "$T/m6.prom"
assert_eq 0 "$(mval "$T/m6.prom" 'mux443_udp_kernel_total{result="fallback"}')" "no IPv6 fallback"
assert_eq 3 "$(mval "$T/m6.prom" 'mux443_udp_kernel_total{result="kernel"}')" "three IPv6 sides entered"
assert_eq "$((4 * N + 35))" "$(mval "$T/m6.prom" mux443_udp_kernel_datagrams_total)" \
    "IPv6 datagrams the kernel carried"
stop_mux mux6
# across the veth: the client's datagrams to the ::1 servers enter through lo's input
# (IPv6 takes ::1 there whatever lo's IPv4 settings), the answers leave by mk0
start_mux mux6r "$T/mux6.ini"
ADMIN_HOST=10.231.0.1 scenario remote6 fd31::1 kernel nsenter -t "$CHILD" -n
assert_eq "$((N + 19)) $((N + 20))" "$(close_counts mux6r ice-udp media)" "IPv6 media close line counts (veth)"
metrics "$PA" "$T/m6r.prom"
assert_eq 0 "$(mval "$T/m6r.prom" 'mux443_udp_kernel_total{result="fallback"}')" "no IPv6 fallback (veth)"
assert_eq "$((4 * N + 35))" "$(mval "$T/m6r.prom" mux443_udp_kernel_datagrams_total)" \
    "IPv6 datagrams the kernel carried (veth)"
stop_mux mux6r

log "4. without CAP_BPF / CAP_NET_ADMIN: one line, user space"
start_bg muxnocap capsh --drop=cap_bpf,cap_net_admin,cap_sys_admin,cap_perfmon -- -c \
    "exec '$MUX443' -c '$T/mux.ini'"
wait_log muxnocap 'ready: listening on' 20
assert_eq 1 "$(count_log muxnocap 'udp kernel path unavailable')" "one line says why"
scenario nocap 127.0.0.1 user
metrics "$PA" "$T/m4.prom"
assert_eq 0 "$(mval "$T/m4.prom" 'mux443_udp_kernel_total{result="kernel"}')" "nothing in the kernel"
assert_eq 3 "$(mval "$T/m4.prom" 'mux443_udp_kernel_total{result="fallback"}')" "three sides counted"
assert_eq 1 "$(count_log muxnocap 'udp kernel path')" "still one line after the flows"
stop_mux muxnocap

log "5. user = nobody: the flows still enter the kernel"
sed -i 's/^workers = 2$/workers = 2\nuser = nobody\nkernel_relay_devices = lo/' "$T/mux.ini"
start_mux muxuser "$T/mux.ini"
assert_grep 'udp kernel path ready on lo:' "$T/muxuser.log" "the program on lo only"
assert_grep 'running as user nobody' "$T/muxuser.log"
assert_not_grep 'CapEff:.*[1-9a-f]' "/proc/$(pid_of muxuser)/status" "no capability effective"
scenario nobody 127.0.0.1 kernel
stop_mux muxuser
