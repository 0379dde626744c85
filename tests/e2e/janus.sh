#!/usr/bin/env bash
# Real-browser ICE-TCP end-to-end test: headless Chromium (playwright-core, janus.mjs)
# reaches TWO real Janus media servers (Debian's janus, echotest plugin) over ICE-TCP
# through ONE mux443 TCP port, and mux443 routes each ICE-TCP connection by the
# server ufrag in the USERNAME of its first STUN Binding request:
#   run A, registration: the test POSTs each Janus ufrag to mux443's admin /ufrags
#          before Chromium sees the answer; mux443 routes by table hits, no fan-out;
#   run B, fan-out: nothing registered; mux443 forwards the first Binding request to
#          both Janus servers and keeps the one that answers with a Binding success.
# On the same port: the page (a static web backend), and each Janus's HTTP API
# (signalling), routed by path (/janus1, /janus2). For each Janus in turn, Chromium
# reaches iceConnectionState connected over a TCP pair whose remote candidate is
# mux443's address:port, the data channel echoes through the echotest plugin, and
# echoed audio and video (Chromium's fake devices) arrive. mux443's /metrics, /ufrags
# and its log (class=ice-tcp ... server= each Janus) are checked.
#
#   usage: janus.sh PATH/TO/mux443 [tcp|udp]   (ctest: e2e_janus, e2e_janus_udp)
#
# With `udp`, the same over UDP: Janus is ICE-lite without ICE-TCP (its one-port range
# is its UDP port), mux443's listener has `udp = yes`, the page keeps Janus's UDP host
# candidate rewritten to mux443's address and port, and every succeeded pair must be
# UDP to mux443's port. In both modes the certificate each DTLS handshake presented
# must carry the fingerprint of the answering Janus (not the other one's).
#
# Obstacles, and how this test handles each:
#  1. Janus only does ICE-TCP as an ICE-lite server (nat: ice_tcp = true needs
#     ice_lite = true): set both. A lite server never sends checks, so every ICE-TCP
#     connection is Chromium's (TCP "active") to Janus's "passive" candidate.
#  2. Janus 1.1.2 never gathers candidates on a loopback interface, and this test
#     may not put traffic on the machine's real interfaces. The whole test runs in a
#     network namespace of its own (`unshare --net`: it disappears with its last
#     process, nothing to clean up) holding lo and a veth pair the test creates:
#       jv0: 10.77.1.1/16 (Janus 1's ICE address), 10.77.2.1/16 (Janus 2's)
#       jv1: 10.77.9.1/16 (mux443's listener; Chromium's host names map to it)
#     Both ends live in the same namespace, so packets between them never leave it.
#     Each Janus is pinned to its address with nat: ice_enforce_list (Janus matches
#     it as a substring of the address: the addresses are chosen so that none is a
#     prefix of another). (The kernel here has no `dummy` link type; veth works.)
#  3. Janus's ICE-TCP listening port is not a setting of its own: libnice takes it
#     from the RTP port range, so media: rtp_port_range = "P-P", a one-port range,
#     fixes it (UDP uses the same number). Consequence: one PeerConnection at a time
#     per Janus per port; the runs hang up (detach + destroy) before the next.
#     And libnice binds that port without SO_REUSEADDR: when Janus closes an ICE-TCP
#     connection first (it often does on hangup, racing Chromium), the TIME_WAIT it
#     leaves on ADDR:P makes every new PeerConnection fail for 60 s with Janus error
#     490 "Error setting ICE locally" (seen here: run B failed 3 times out of 4). The
#     namespace is the test's own, so it sets net.ipv4.tcp_max_tw_buckets = 0 there
#     (per namespace: no TIME_WAIT state is kept; nothing outside is affected), and
#     janus.mjs still waits until `ss` shows both ICE ports free before run B.
#  4. Chromium's own candidates must stay out of Janus's view, else the two could
#     connect over UDP around mux443: the page strips every a=candidate line from its
#     offer and trickles only {completed: true}. In Janus's answer it keeps only the
#     TCP passive host candidate, rewritten to mux443's address and port (the UDP and
#     any other candidate are dropped), as an operator's signalling server would. The
#     test also checks that every succeeded candidate pair is TCP to mux443's port.
#  5. mux443 routes a TCP connection once, by its first bytes, while Chromium keeps
#     idle HTTP/1.1 connections per origin: a /janus2 request could go down a
#     connection mux443 routed to Janus 1. The page therefore reaches Janus N at its
#     own host name, jN.test (same address, same port, its own connection pool), with
#     CORS "simple" requests (text/plain POST bodies, GETs; Janus allows any origin).
#  6. getUserMedia needs a secure context and the page is plain http:
#     --unsafely-treat-insecure-origin-as-secure for the page's origin, with
#     --use-fake-device-for-media-stream (synthetic camera + microphone).
#  7. In the fan-out run both Janus servers must be listening when Chromium connects
#     (else the "wrong" one merely refuses the connection): both sessions are
#     negotiated before either is connected, so the Binding request for Janus 1's
#     ufrag also reaches Janus 2's live agent, which refuses it (STUN error or close);
#     janus.mjs checks that no fan-out leg failed to connect.
#  8. Chromium's --host-resolver-rules "MAP * ~NOTFOUND" (so that no name resolves to
#     anything outside) also catches the IP literal of a remote ICE-TCP candidate:
#     WebRTC's TCP socket fails with ERR_NAME_NOT_RESOLVED (-105) and never connects.
#     janus.mjs adds "EXCLUDE <mux443's address>" before it.
#
# Needs: janus (Debian package: echotest plugin + HTTP transport), chromium, nodejs +
# npm, python3, iproute2 (ip), util-linux (unshare, flock); playwright-core from
# tests/e2e/package-lock.json (`npm ci` here when tests/e2e/node_modules is missing,
# before entering the namespace). Exits 77 (ctest: skipped) only when no network
# namespace can be created (needs root, or unprivileged user namespaces); a missing
# tool is a failure. KEEP_TMP=1 keeps the temp dir (logs, configs, results.json).
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [[ -z ${E2E_JANUS_NETNS_CHILD:-} ]]; then
    say() { printf '[%s janus] %s\n' "$(date +%T.%3N)" "$*" >&2; }
    missing=()
    [[ -x $CHROMIUM ]] || missing+=("chromium ($CHROMIUM)")
    for tool in janus node npm ip unshare flock python3 ss; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        say "FAIL: missing ${missing[*]} (apt-get install janus chromium nodejs npm iproute2 util-linux python3)"
        exit 1
    fi
    if [[ ! -f $E2E_DIR/node_modules/playwright-core/package.json ]]; then
        say "installing playwright-core (npm ci in $E2E_DIR)"
        (cd "$E2E_DIR" && flock . bash -c 'test -f node_modules/playwright-core/package.json ||
            npm ci --no-audit --no-fund') >&2 || { say "FAIL: npm ci"; exit 1; }
    fi
    if unshare --net true 2>/dev/null; then
        ns=(unshare --net)
    elif unshare --user --map-root-user --net true 2>/dev/null; then
        ns=(unshare --user --map-root-user --net)
    else
        say "SKIP: cannot create a network namespace (needs root or unprivileged user namespaces)"
        exit 77
    fi
    export E2E_JANUS_NETNS_CHILD=1
    exec "${ns[@]}" -- bash "$0" "$@"
fi

# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/../integ/lib.sh" "$@"
TRANSPORT=${2:-tcp}
[[ $TRANSPORT == tcp || $TRANSPORT == udp ]] || fail "transport must be tcp or udp, not $TRANSPORT"
if [[ $TRANSPORT == udp ]]; then
    ICE_TCP=false MUX_UDP="udp = yes"
else
    ICE_TCP=true MUX_UDP=""
fi
# shellcheck source=tests/e2e/driver.sh
source "$(dirname "$0")/driver.sh"

# ---------------------------------------------------------------- network
JA1=10.77.1.1 # Janus 1's ICE address
JA2=10.77.2.1 # Janus 2's ICE address
MA=10.77.9.1  # mux443's listener
ip link set lo up || fail "ip link set lo up"
ip link add jv0 type veth peer name jv1 ||
    fail "cannot create a veth pair in the test's network namespace"
{ ip addr add "$JA1/16" dev jv0 && ip addr add "$JA2/16" dev jv0 && ip addr add "$MA/16" dev jv1 &&
    ip link set jv0 up && ip link set jv1 up; } || fail "cannot configure the veth pair"
# No TIME_WAIT in this namespace (obstacle 3 above): Janus's one ICE port must be
# bindable again right after a hangup.
echo 0 >/proc/sys/net/ipv4/tcp_max_tw_buckets || fail "cannot set tcp_max_tw_buckets in the namespace"
links=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort | tr '\n' ' ')
assert_eq "jv0 jv1 lo " "$links" "network interfaces in the test's namespace"
log "network: own namespace; jv0 $JA1 $JA2, jv1 $MA"
[[ -f $E2E_DIR/node_modules/playwright-core/package.json ]] || fail "playwright-core is not installed"
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp

# ---------------------------------------------------------------- Janus x2
echotest=(/usr/lib/*/janus/plugins/libjanus_echotest.so)
JLIB=$(dirname "$(dirname "${echotest[0]}")")
[[ -f $JLIB/plugins/libjanus_echotest.so && -f $JLIB/transports/libjanus_http.so ]] ||
    fail "janus: no echotest plugin or HTTP transport under /usr/lib/*/janus"
# Load only the echotest plugin and the HTTP transport: list everything else as disabled.
others() {
    local f out=()
    for f in "$1"/*.so; do
        [[ -e $f && ${f##*/} != "$2" ]] && out+=("${f##*/}")
    done
    (IFS=,; echo "${out[*]}")
}
DIS_PLUGINS=$(others "$JLIB/plugins" libjanus_echotest.so)
DIS_TRANSPORTS=$(others "$JLIB/transports" libjanus_http.so)
DIS_EVENTS=$(others "$JLIB/events" none)
DIS_LOGGERS=$(others "$JLIB/loggers" none)

PM=$(free_port "$MA") # mux443: the one port
PA=$(free_port)       # mux443's admin, 127.0.0.1
PW=$(free_port)       # static web server (the page)
H1=$(free_port)       # Janus 1 HTTP API
H2=$(free_port)       # Janus 2 HTTP API
P1=$((20000 + RANDOM % 10000)) # Janus 1 ICE-TCP (a one-port range)
P2=$((P1 + 1))                 # Janus 2 ICE-TCP

# janus_conf N ICE_ADDR ICE_PORT HTTP_PORT
janus_conf() {
    local d=$T/janus$1
    mkdir -p "$d"
    cat >"$d/janus.jcfg" <<JCFG
general: {
    configs_folder = "$d"
    plugins_folder = "$JLIB/plugins"
    transports_folder = "$JLIB/transports"
    events_folder = "$JLIB/events"
    loggers_folder = "$JLIB/loggers"
    debug_level = 4
    server_name = "janus$1"
    interface = "$2"            # else Janus looks for a default route to find its IP
    session_timeout = 120
}
media: {
    rtp_port_range = "$3-$3"    # the ICE-TCP port too: a one-port range fixes it
}
nat: {
    ice_lite = true             # required by ice_tcp
    ice_tcp = $ICE_TCP
    ice_enforce_list = "$2"     # Janus never gathers on loopback: its veth address
    ignore_mdns = true
    nice_debug = false
}
plugins: {
    disable = "$DIS_PLUGINS"
}
transports: {
    disable = "$DIS_TRANSPORTS"
}
events: {
    broadcast = false
    disable = "$DIS_EVENTS"
}
loggers: {
    disable = "$DIS_LOGGERS"
}
JCFG
    cat >"$d/janus.transport.http.jcfg" <<JCFG
general: {
    json = "compact"
    base_path = "/janus$1"
    http = true
    port = $4
    ip = "127.0.0.1"
    https = false
}
admin: {
    admin_http = false
    admin_https = false
}
cors: {
}
JCFG
    cat >"$d/janus.plugin.echotest.jcfg" <<JCFG
general: {
    events = false
}
JCFG
}
janus_conf 1 "$JA1" "$P1" "$H1"
janus_conf 2 "$JA2" "$P2" "$H2"
start_bg janus1 janus -C "$T/janus1/janus.jcfg" -F "$T/janus1" -o -D
start_bg janus2 janus -C "$T/janus2/janus.jcfg" -F "$T/janus2" -o -D
start_bg web "$PY" -u -m http.server "$PW" --bind 127.0.0.1 --directory "$E2E_DIR/janus-page"

cat >"$T/mux.ini" <<INI
[mux443]
listen = $MA:$PM
$MUX_UDP
workers = 2
admin = 127.0.0.1:$PA
drain_timeout = 5s
log_level = debug               ; for the "fan-out: SERVER owns ufrag" lines

[backend web]
server = 127.0.0.1:$PW

[backend janus1-http]
server = 127.0.0.1:$H1

[backend janus2-http]
server = 127.0.0.1:$H2

[backend media]                 ; both Janus ICE-TCP endpoints behind the one port
server = $JA1:$P1, $JA2:$P2
balance = ufrag

[route janus1]
class = http
path = /janus1
backend = janus1-http

[route janus2]
class = http
path = /janus2
backend = janus2-http

[route]
http = web
ice-tcp = media
INI
# UDP_RELAY=kernel (ctest e2e_janus_udp_kernel): the media side through the UDP kernel
# path (relay = kernel), DTLS and SRTP in the tc program, ICE checks in user space.
if [[ ${UDP_RELAY:-user} == kernel ]]; then
    printf '[route mediak]\nclass = ice-tcp\nbackend = media\nrelay = kernel\n' >>"$T/mux.ini"
fi
for n in 1 2; do
    wait_log "janus$n" "HTTP webserver started .*/janus$n" 30
    wait_log "janus$n" 'Loading plugin .libjanus_echotest\.so' 30
done
if [[ $TRANSPORT == udp ]]; then
    want_ice='Initializing ICE stuff \(Lite mode, ICE-TCP candidates disabled'
else
    want_ice='Initializing ICE stuff \(Lite mode, ICE-TCP candidates enabled'
fi
for n in 1 2; do
    assert_grep "$want_ice" "$T/janus$n.log" "janus$n: ICE-lite, ICE-TCP $ICE_TCP"
done
wait_log web "Serving HTTP on 127\.0\.0\.1 port $PW"
start_mux mux "$T/mux.ini"

# ---------------------------------------------------------------- the browser
run_driver 170 janus.mjs E2E_MUX_ADDR="$MA" E2E_PORT="$PM" E2E_ADMIN="127.0.0.1:$PA" \
    E2E_JANUS1="$JA1:$P1" E2E_JANUS2="$JA2:$P2" E2E_TRANSPORT="$TRANSPORT"

# ---------------------------------------------------------------- logs
# Signalling crossed mux443 too, each Janus's API to its own backend.
assert_grep 'class=http .*route=janus1 backend=janus1-http' "$T/mux.log" "Janus 1 API through mux443"
assert_grep 'class=http .*route=janus2 backend=janus2-http' "$T/mux.log" "Janus 2 API through mux443"
assert_not_grep 'route=janus1 backend=janus1-http .*server=127\.0\.0\.1:'"$H2" "$T/mux.log"
for n in 1 2; do
    assert_grep 'WebRTC media is now available' "$T/janus$n.log" "janus$n: PeerConnection up"
done
# Run B: each Janus won a fan-out (the other one was asked too, see janus.mjs).
assert_grep "fan-out: $JA1:$P1 owns ufrag '[^']+'" "$T/mux.log" "fan-out won by Janus 1"
assert_grep "fan-out: $JA2:$P2 owns ufrag '[^']+'" "$T/mux.log" "fan-out won by Janus 2"
if [[ $TRANSPORT == udp ]]; then
    # UDP flows are logged when they end: at shutdown here (idle timeout 10m). Each
    # Janus got media-side flows (class=ice-udp) routed by its registered ufrag, with
    # datagrams both ways; no TCP ICE connection at all.
    curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
    stop_mux mux
    for srv in "$JA1:$P1" "$JA2:$P2"; do
        assert_grep "udp flow=[0-9]+ client=[0-9.]+:[0-9]+ listener=main class=ice-udp ufrag=[^ ]+ route=(ice-tcp|mediak) backend=media server=$srv dgrams_in=[1-9][0-9]* bytes_in=[0-9]+ dgrams_out=[1-9][0-9]* " \
            "$T/mux.log" "media flow to $srv with datagrams both ways"
    done
    if [[ ${UDP_RELAY:-user} == kernel ]]; then
        # the media sides entered the kernel, and the close lines count more datagrams
        # than user space relayed (DTLS and SRTP crossed the tc program)
        n=$(sed -nE 's/^mux443_udp_kernel_total\{result="kernel"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
        ((${n:-0} >= 2)) || fail "expected >= 2 media sides in the kernel, got ${n:-none}"
        user_in=$(sed -nE 's/^mux443_udp_datagrams_total\{direction="in"\} ([0-9]+)$/\1/p' "$T/metrics.txt")
        closed_in=$(grep -o 'udp flow=.* dgrams_in=[0-9]*' "$T/mux.log" | grep -o 'dgrams_in=[0-9]*' |
            awk -F= '{ s += $2 } END { print s }')
        ((closed_in > user_in)) || fail "no datagram crossed the kernel ($closed_in closed, $user_in in user space)"
    fi
    assert_not_grep 'class=ice-tcp ' "$T/mux.log"
    exit 0
fi
# ICE-TCP connections to each Janus (logged at close; the page hung up).
wait_log mux "class=ice-tcp .*backend=media server=$JA1:$P1 .*reason=" 20
wait_log mux "class=ice-tcp .*backend=media server=$JA2:$P2 .*reason=" 20
n=$(count_log mux "class=ice-tcp ufrag=\"[^\"]+\" .*backend=media server=$JA1:$P1")
((n >= 2)) || fail "expected >= 2 class=ice-tcp connections to Janus 1 (one per run), got $n"
n=$(count_log mux "class=ice-tcp ufrag=\"[^\"]+\" .*backend=media server=$JA2:$P2")
((n >= 2)) || fail "expected >= 2 class=ice-tcp connections to Janus 2 (one per run), got $n"
stop_mux mux
