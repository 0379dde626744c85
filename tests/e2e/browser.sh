#!/usr/bin/env bash
# Real-browser end-to-end test: Debian's Chromium, driven by playwright-core
# (browser.mjs), loads a page over HTTPS through mux443 and, on that same port, talks
# WSS to a WebSocket echo server and TURNS and TURN/TCP to a real coturn, with two
# RTCPeerConnections exchanging data-channel messages through coturn relays.
#
#   usage: browser.sh PATH/TO/mux443          (ctest: e2e_browser)
#
# What is proven:
#   - https:  the page and its script come from a static web server behind mux443, and
#             Chromium validated the certificate (issuer = our test CA);
#   - wss:    an echo exchange on wss://web.test:PORT/ws (mux443 terminates TLS, sees
#             an HTTP Upgrade, relays to the WebSocket backend);
#   - turns:  Chromium's TURNS (a ClientHello without ALPN) is terminated by mux443,
#             STUN is found inside, and the plaintext goes to coturn's
#             --tcp-proxy-port behind a PROXY v2 header; both peer connections select
#             a relay/relay pair whose local candidate has relayProtocol "tls";
#   - turn:   the same over plain TURN/TCP (relayProtocol "tcp");
#   - the TURNS certificate is really validated: a name it does not cover
#             (other.test) and a certificate from a CA that is not trusted
#             (untrusted.test) both yield no relay candidate;
#   - mux443 logs class=https, class=wss, class=turns and class=stun, coturn logs the
#     allocations, mux443 exits 0 on SIGTERM with no sanitizer report.
#
# How Chromium is made to trust the test CA (and why this way): Chromium on Linux
# validates server certificates, for page loads and for TURNS alike (WebRTC's TURN
# TLS sockets go through Chromium's network stack and its certificate verifier),
# against the Chrome Root Store plus the trust anchors the user added to the NSS
# database $HOME/.pki/nssdb. We give Chromium a fresh HOME whose NSS database holds
# our throw-away CA with trust flags "C,," (a CA trusted to issue TLS server
# certificates) via `certutil -A`. Nothing system-wide is touched and no
# --ignore-certificate-errors is used: that flag would also skip the TURNS check,
# which is the point of the test.
#
# Network: the whole test runs in a network namespace of its own that holds nothing
# but lo (`unshare --net`, created and re-entered below; it disappears with the
# last process in it). Everything listens on and connects to 127.0.0.1 there, and by
# construction no packet can leave the machine. Why not just the host's loopback:
# Chromium's WebRTC stack enumerates the host's real interfaces even for relay-only
# peer connections, and on this sandbox's eth0 it then sends mDNS announcements
# (224.0.0.251:5353, obfuscated host-candidate names) and IGMP joins; only loopback
# may carry test traffic. What Chromium needs to work with lo only:
#   --allow-loopback-in-peer-connection: WebRTC ignores loopback interfaces by
#     default, so with lo alone it finds no network and gathers no candidate at all
#     (no TURN connection is even attempted);
#   --host-resolver-rules: web.test, turn.test (+ the negative controls' names) map
#     to 127.0.0.1; every other name fails to resolve.
# coturn relays between its own 127.0.0.1 ports: --relay-ip=127.0.0.1 and
# --allow-loopback-peers (else coturn refuses CreatePermission for a 127.0.0.1 peer,
# and both peers' relay candidates are 127.0.0.1). Chromium itself accepts relay
# candidates on 127.0.0.1: no further flag is needed. The namespace needs root (CI),
# or unprivileged user namespaces (`unshare --user --map-root-user --net`).
# E2E_NETNS=off runs on the host's loopback instead (it works, but see above).
#
# Needs: chromium, libnss3-tools (certutil), coturn, openssl, curl, iproute2 (ip),
# util-linux (unshare, flock), nodejs + npm, python3-websockets; playwright-core from
# tests/e2e/package-lock.json (installed here with `npm ci` when tests/e2e/node_modules
# is missing; that needs the npm registry, so it runs before entering the namespace).
# Exits 77 (ctest: skipped) when a tool is missing or no namespace can be made, unless
# E2E_REQUIRED=1, which turns that into a failure.
# KEEP_TMP=1 keeps the temp dir (logs, certificates, results.json, page.png).
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [[ -z ${E2E_NETNS_CHILD:-} ]]; then
    say() { printf '[%s browser] %s\n' "$(date +%T.%3N)" "$*" >&2; }
    skip() {
        if [[ ${E2E_REQUIRED:-} == 1 ]]; then
            say "FAIL (E2E_REQUIRED=1): $*"
            exit 1
        fi
        say "SKIP: $*"
        exit 77
    }
    missing=()
    [[ -x $CHROMIUM ]] || missing+=("chromium ($CHROMIUM)")
    for tool in certutil openssl turnserver node npm curl ip unshare flock; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    /usr/bin/python3 -c 'import websockets' 2>/dev/null || missing+=(python3-websockets)
    ((${#missing[@]} == 0)) || skip "missing ${missing[*]}" \
        "(apt-get install chromium libnss3-tools coturn nodejs npm python3-websockets curl iproute2)"

    # playwright-core: `npm ci` from the lock file, once per checkout; `flock` on the
    # directory serialises concurrent runs (the second finds the modules installed).
    if [[ ! -f $E2E_DIR/node_modules/playwright-core/package.json ]]; then
        say "installing playwright-core (npm ci in $E2E_DIR)"
        (cd "$E2E_DIR" && flock . bash -c 'test -f node_modules/playwright-core/package.json ||
            npm ci --no-audit --no-fund') >&2 || { say "FAIL: npm ci"; exit 1; }
    fi

    if [[ ${E2E_NETNS:-auto} != off ]]; then
        if unshare --net true 2>/dev/null; then
            ns=(unshare --net)
        elif unshare --user --map-root-user --net true 2>/dev/null; then
            ns=(unshare --user --map-root-user --net)
        else
            skip "cannot create a network namespace (needs root or unprivileged user" \
                "namespaces); E2E_NETNS=off runs on the host's loopback"
        fi
        export E2E_NETNS_CHILD=1
        exec "${ns[@]}" -- bash -c 'ip link set lo up && exec bash "$@"' e2e-netns "$0" "$@"
    fi
fi

source "$(dirname "$0")/../integ/lib.sh" "$@"
# shellcheck source=tests/e2e/driver.sh
source "$(dirname "$0")/driver.sh"

if [[ -n ${E2E_NETNS_CHILD:-} ]]; then
    links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
    assert_eq "lo " "$links" "network interfaces in the test's namespace"
    log "network: own namespace, interfaces: $links"
else
    log "network: the host's loopback (E2E_NETNS=off)"
fi
[[ -f $E2E_DIR/node_modules/playwright-core/package.json ]] || fail "playwright-core is not installed"

# Chromium, node and playwright write their temp files under $T too.
mkdir -p "$T/tmp"
export TMPDIR=$T/tmp

# ---------------------------------------------------------------- certificates
# A test CA, a leaf for web.test + turn.test signed by it, and a second CA (never
# trusted) with a leaf for untrusted.test: the negative control.
PKI=$T/pki
mkdir -p "$PKI"
CA_CN="mux443 e2e test CA"
make_ca() { # make_ca NAME CN
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.pem" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign \
        -addext subjectKeyIdentifier=hash 2>>"$T/openssl.log"
}
make_leaf() { # make_leaf NAME CA CN SAN
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=$3" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>>"$T/openssl.log"
    cat >"$PKI/$1.ext" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $4
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EXT
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.pem" -CAkey "$PKI/$2.key" \
        -CAcreateserial -days 2 -sha256 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>>"$T/openssl.log"
}
make_ca ca "$CA_CN" || fail "openssl: test CA"
make_leaf leaf ca web.test "DNS:web.test, DNS:turn.test" || fail "openssl: leaf"
make_ca rogue-ca "mux443 e2e untrusted CA" || fail "openssl: untrusted CA"
make_leaf rogue rogue-ca untrusted.test "DNS:untrusted.test" || fail "openssl: untrusted leaf"
openssl verify -CAfile "$PKI/ca.pem" "$PKI/leaf.pem" >>"$T/openssl.log" 2>&1 ||
    fail "the leaf does not verify against the test CA"

# ---------------------------------------------------------------- Chromium's trust
E2E_HOME=$T/home
NSSDB=sql:$E2E_HOME/.pki/nssdb
mkdir -p "$E2E_HOME/.pki/nssdb"
certutil -N -d "$NSSDB" --empty-password >>"$T/certutil.log" 2>&1 || fail "certutil -N"
certutil -A -d "$NSSDB" -n "$CA_CN" -t "C,," -i "$PKI/ca.pem" >>"$T/certutil.log" 2>&1 ||
    fail "certutil -A"
certutil -L -d "$NSSDB" >"$T/nssdb.txt" 2>&1
assert_grep "^$CA_CN +C,," "$T/nssdb.txt" "NSS database trusts the test CA"

# ---------------------------------------------------------------- backends
PM=$(free_port)  # mux443: everything
PW=$(free_port)  # static web server
PS=$(free_port)  # WebSocket echo
PT=$(free_port)  # coturn's own listener (unused by the test, coturn needs one)
PP=$(free_port)  # coturn --tcp-proxy-port: PROXY v2 + TURN/TCP from mux443
MINP=$((49152 + RANDOM % 15000))
TURN_USER=e2e
TURN_PASS=$(openssl rand -hex 12)

start_bg turn turnserver -n --listening-ip=127.0.0.1 --listening-port="$PT" \
    --tcp-proxy-port="$PP" --relay-ip=127.0.0.1 --min-port="$MINP" --max-port=$((MINP + 200)) \
    --lt-cred-mech --user="$TURN_USER:$TURN_PASS" --realm=mux443.test \
    --no-tls --no-dtls --no-cli --allow-loopback-peers \
    --log-file=stdout --simple-log --verbose \
    --pidfile="$T/turn.pid" --db="$T/turndb"
start_bg web "$PY" -u -m http.server "$PW" --bind 127.0.0.1 --directory "$E2E_DIR/page"
start_bg ws "$PY" "$PEERS/ws_echo.py" e2e "$PS"

cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
drain_timeout = 5s

[tls]
cert = $PKI/leaf.pem
key  = $PKI/leaf.key

[tls untrusted]                 ; the negative control's certificate (SNI untrusted.test)
cert = $PKI/rogue.pem
key  = $PKI/rogue.key
default = no

[backend web]
server = 127.0.0.1:$PW

[backend ws]
server = 127.0.0.1:$PS

[backend turn]
server = 127.0.0.1:$PP
proxy_protocol = v2

[route]
http      = web
websocket = ws
stun      = turn
INI
wait_log turn "TCP listener opened on : 127\.0\.0\.1:$PP" 20
wait_log web "Serving HTTP on 127\.0\.0\.1 port $PW"
wait_ready ws
start_mux mux "$T/mux.ini"

# A quick check with curl before the browser (same CA, same names).
out=$(curl -sS --max-time 10 --cacert "$PKI/ca.pem" --resolve "web.test:$PM:127.0.0.1" \
    "https://web.test:$PM/") || fail "curl through mux443 failed"
assert_contains "$out" "mux443 end-to-end test" "curl https://web.test:$PM/"

# ---------------------------------------------------------------- the browser
run_driver 150 browser.mjs E2E_PORT="$PM" E2E_HOME="$E2E_HOME" E2E_CA_CN="$CA_CN" \
    E2E_TURN_USER="$TURN_USER" E2E_TURN_PASS="$TURN_PASS"

# ---------------------------------------------------------------- logs
# Every connection is closed once the browser is gone: one close line each.
wait_log mux 'class=https .*backend=web .*reason='
wait_log mux 'class=wss .*backend=ws .*reason='
wait_log mux 'class=turns .*backend=turn .*reason='
wait_log mux 'class=stun .*backend=turn .*reason='
# turns: 2 peer connections (+ 2 refused negative controls, not routed to turn).
n=$(count_log mux 'class=turns .*backend=turn server=127\.0\.0\.1:'"$PP")
((n >= 2)) || fail "expected >= 2 class=turns connections relayed to coturn, got $n"
n=$(count_log mux 'class=stun .*backend=turn server=127\.0\.0\.1:'"$PP")
((n >= 2)) || fail "expected >= 2 class=stun connections relayed to coturn, got $n"
# The negative controls: Chromium aborted the handshake (it refused the certificate).
assert_grep 'class=tls sni="other\.test" .*reason="TLS handshake failed.*certificate' "$T/mux.log" \
    "Chromium refused the certificate for other.test"
assert_grep 'class=tls sni="untrusted\.test" .*reason="TLS handshake failed.*certificate' "$T/mux.log" \
    "Chromium refused the certificate for untrusted.test"
# coturn saw Chromium's own address and port (from mux443's PROXY v2 header), not
# mux443's outgoing connection: every client port mux443 logged for the turn backend
# is the `remote` of a coturn session.
for port in $(grep -E 'class=(turns|stun) .*backend=turn ' "$T/mux.log" |
    sed -nE 's/.* client=127\.0\.0\.1:([0-9]+) .*/\1/p'); do
    wait_log turn "remote 127\.0\.0\.1:$port, reason"
done
assert_grep '"GET / HTTP/1\.1" 200' "$T/web.log" "web backend served the page"
assert_grep '"GET /e2e\.js HTTP/1\.1" 200' "$T/web.log" "web backend served the script"
assert_grep 'ws:e2e open path=/ws' "$T/ws.log" "WebSocket backend saw the upgrade"
n=$(count_log turn 'ALLOCATE processed, success')
((n >= 4)) || fail "coturn: expected >= 4 successful allocations (2 TURNS + 2 TURN/TCP), got $n"
assert_grep 'CREATE_PERMISSION processed, success' "$T/turn.log" "coturn: permissions"
stop_mux mux
