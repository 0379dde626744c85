#!/usr/bin/env bash
# mux443 demo: installs what is missing (Debian 12), builds mux443, starts real
# backends on the loopback ports of etc/mux443.ini, runs mux443 on port 8443, prints
# commands that show every route working, and tails mux443's log. Ctrl-C stops it all.
#
#   etc/demo/run.sh            (as root, or a user with sudo for the package step)
#
# Backends: web (HTTP) 18080, WebSocket signalling 18081, coturn (TURN, PROXY v2 on
# --tcp-proxy-port 13479), ICE-TCP media workers 14444 (owns ufrag dptM) + 14445 (owns
# abcd), an HTTPS server with its own certificate (openssl s_server -www) 18443 for TLS
# passthrough. mux443 terminates the rest of TLS with etc/demo/demo-cert.pem.
# Logs, certificate and pids live in build/demo/. Safe to run again: processes left by
# an earlier run (recorded by pid in build/demo/pids) are stopped first.
# Ctrl-C, SIGTERM, SIGHUP, or the end of a pipe it writes to (`run.sh | tee demo.log`)
# stop every process it started, by pid. Bold only when the output is a terminal.
# For tests: MUX443_DEMO_BIN=PATH uses that mux443 (no package step, no build),
# MUX443_DEMO_STATE=DIR keeps state there instead of build/demo.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$REPO/build
STATE=${MUX443_DEMO_STATE:-$BUILD/demo}
CONF=$REPO/etc/mux443.ini
PY=/usr/bin/python3 # Debian's python: python3-websockets is installed for it
PEERS=$REPO/tests/peers

# Escape sequences only for a terminal (not in `2>&1 | tee demo.log`).
say() {
    if [[ -t 2 ]]; then
        printf '\033[1m==> %s\033[0m\n' "$*" >&2
    else
        printf '==> %s\n' "$*" >&2
    fi
}
die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

if [[ -n ${MUX443_DEMO_BIN:-} ]]; then
    MUX443=$MUX443_DEMO_BIN
else
    # ------------------------------------------------------------ 1. packages
    "$REPO/packaging/install-deps.sh" demo

    # ------------------------------------------------------------ 2. build
    say "building mux443 in $BUILD"
    # The test suite needs more (cmocka, ...): leave it out unless it can be built.
    tests=OFF
    pkg-config --exists cmocka 2>/dev/null && tests=ON
    cmake -S "$REPO" -B "$BUILD" -DMUX443_TESTS=$tests >/dev/null
    cmake --build "$BUILD" -j2 >/dev/null
    MUX443=$BUILD/mux443
fi
[[ -x $MUX443 ]] || die "build did not produce $MUX443"
"$MUX443" -t -c "$CONF" >/dev/null || die "$CONF is invalid (see above)"

# ---------------------------------------------------------------- 3. state, old run
mkdir -p "$STATE"
PIDFILE=$STATE/pids
if [[ -s $PIDFILE ]]; then
    say "stopping processes left by an earlier run"
    while read -r pid name; do
        # Only a pid whose command still looks like ours (the pid may have been reused).
        if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done <"$PIDFILE"
    for _ in $(seq 50); do
        alive=0
        while read -r pid name; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$PIDFILE"
        ((alive)) || break
        sleep 0.1
    done
fi
: >"$PIDFILE"

PIDS=()
cleanup() {
    # Children first, messages last: the terminal or pipe may be gone already (tee
    # stopped by the same Ctrl-C), and a write to it must not end the cleanup.
    trap - EXIT INT TERM HUP
    trap '' PIPE
    set +e # stop everything, whatever fails on the way
    local pid
    [[ -n ${TAIL:-} ]] && kill -TERM "$TAIL" 2>/dev/null
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    echo >&2 || true # SIGPIPE is ignored now: a closed pipe is only an error here
    say "demo stopped" || true
    # Forget the pids, unless a newer run has already taken the file over.
    local first=""
    [[ -s $PIDFILE ]] && read -r first _ <"$PIDFILE"
    [[ -z $first || " ${PIDS[*]} " == *" $first "* ]] && : >"$PIDFILE"
    return 0
}
trap cleanup EXIT
trap 'exit 0' INT TERM HUP PIPE

# start NAME MATCH CMD...: CMD in the background, output in $STATE/NAME.log; MATCH is
# a word of its command line (checked before a later run kills the pid).
start() {
    local name=$1 match=$2
    shift 2
    : >"$STATE/$name.log"
    "$@" >"$STATE/$name.log" 2>&1 &
    PIDS+=($!)
    echo "$! $match" >>"$PIDFILE"
}

# wait_for NAME REGEX: until the log shows REGEX (20 s deadline).
wait_for() {
    local name=$1 re=$2 deadline=$((SECONDS + 20)) pid=${PIDS[-1]}
    until grep -Eq -- "$re" "$STATE/$name.log"; do
        if ((SECONDS >= deadline)) || ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$STATE/$name.log" >&2
            die "$name did not become ready (log: $STATE/$name.log)"
        fi
        sleep 0.1
    done
}

port_busy() { "$PY" -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"; }
for p in 8443 9443 18080 18081 13479 14444 14445 18443; do
    port_busy "$p" && die "port $p is in use by another program: stop it first (ss -ltnp 'sport = :$p')"
done

# ---------------------------------------------------------------- 4. backends
say "starting the backends"
if [[ ! -s $STATE/web-tls.crt ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=legacy.demo.test" -addext "subjectAltName=DNS:legacy.demo.test" \
        -keyout "$STATE/web-tls.key" -out "$STATE/web-tls.crt" 2>/dev/null
fi
start web http_server.py "$PY" "$PEERS/http_server.py" web 18080
wait_for web "^ready( |$)"
start signalling ws_echo.py "$PY" "$PEERS/ws_echo.py" signalling 18081
wait_for signalling "^ready( |$)"
start media-1 ice_tcp.py "$PY" "$PEERS/ice_tcp.py" --ufrag dptM media-1 14444
wait_for media-1 "^ready( |$)"
start media-2 ice_tcp.py "$PY" "$PEERS/ice_tcp.py" --ufrag abcd media-2 14445
wait_for media-2 "^ready( |$)"
start web-tls s_server openssl s_server -accept 127.0.0.1:18443 -cert "$STATE/web-tls.crt" \
    -key "$STATE/web-tls.key" -www
wait_for web-tls ACCEPT
# coturn: plain TURN/TCP only behind mux443, on its PROXY-protocol port; UDP on 13478.
start coturn turnserver turnserver -n --listening-ip=127.0.0.1 --listening-port=13478 \
    --tcp-proxy-port=13479 --relay-ip=127.0.0.1 --min-port=49160 --max-port=49200 \
    --lt-cred-mech --user=demo:demo --realm=mux443.demo --no-tls --no-dtls --no-cli \
    --allow-loopback-peers --log-file=stdout --simple-log --verbose --pidfile="$STATE/coturn.pid" \
    --db="$STATE/turndb"
wait_for coturn 'TCP listener opened on : 127.0.0.1:13479'

# ---------------------------------------------------------------- 5. mux443
say "starting mux443 on $CONF"
start mux443 "$MUX443" "$MUX443" -c "$CONF"
wait_for mux443 'ready: listening on'

V=$REPO/tests/vectors
CA=$REPO/etc/demo/demo-cert.pem
cat <<TXT

mux443 is listening on 127.0.0.1:8443 and [::1]:8443.
Status page: http://127.0.0.1:9443/ (open it in a browser and watch the routes light up).
Try, from another terminal:

  # HTTP and HTTPS (terminated by mux443) -> web (18080)
  curl http://127.0.0.1:8443/hello
  curl --cacert $CA --resolve web.test:8443:127.0.0.1 https://web.test:8443/hello

  # WebSocket -> signalling (18081), plain and inside TLS (the client trusts the demo CA)
  $PY $PEERS/ws_client.py ws://127.0.0.1:8443/ws 'hello'
  SSL_CERT_FILE=$CA $PY $PEERS/ws_client.py wss://localhost:8443/ws 'hello'

  # TLS passed through by SNI -> openssl s_server -www (18443), its own certificate
  openssl s_client -connect 127.0.0.1:8443 -servername legacy.demo.test </dev/null 2>/dev/null | grep subject=

  # TURN over TCP and TURNS -> coturn (PROXY v2: coturn logs the real client 127.0.0.2).
  # turnutils_uclient is coturn's load tester and chatty: its TLS client also tries
  # TLS 1.0/1.1, which mux443 refuses (TLS 1.2+) before it retries, and it counts a few
  # packets "lost" over any TLS. Success is tot_recv_msgs above 0; the grep keeps that.
  turnutils_uclient -t -y -n 3 -m 1 -L 127.0.0.2 -p 8443 -u demo -w demo 127.0.0.1 2>&1 | grep -E 'tot_(send|recv)_msgs' | tail -n 1
  turnutils_uclient -t -S -y -n 3 -m 1 -L 127.0.0.2 -p 8443 -u demo -w demo 127.0.0.1 2>&1 | grep -E 'tot_(send|recv)_msgs' | tail -n 1
  grep 'remote 127.0.0.2' $STATE/coturn.log | tail -n 2

  # ICE-TCP -> the media worker that owns the ufrag: Chromium's first check (ufrag dptM)
  # is found by fan-out; ufrag abcd is registered first, then goes straight to 14445
  $PY $PEERS/client.py 127.0.0.1 8443 --file $V/chromium-ice-tcp-binding.bin --frame
  curl -H 'Content-Type: text/x-mux443-ufrags' -d 'abcd 127.0.0.1:14445' http://127.0.0.1:9443/ufrags
  $PY $PEERS/client.py 127.0.0.1 8443 --ice-binding abcd:demo --frame
  curl http://127.0.0.1:9443/ufrags

  # Metrics, and what mux443 would do with captured bytes
  curl -s http://127.0.0.1:9443/metrics | grep -E '^mux443_connections_total'
  $MUX443 --explain -c $CONF < $V/chromium-clienthello-sni.bin

Logs: $STATE/*.log     Ctrl-C stops everything.
---------------------------------------------------------------- mux443 log
TXT
tail -n +1 -f "$STATE/mux443.log" --pid="${PIDS[-1]}" &
TAIL=$!
wait "$TAIL" || true
