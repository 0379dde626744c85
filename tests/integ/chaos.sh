#!/usr/bin/env bash
# Chaos: one mux443 (2 workers, TLS termination and passthrough, HTTP / WebSocket / STUN
# / ICE-TCP routes, a PROXY-protocol listener, a ufrag pool that fans out to hostile media
# servers, small peek/idle/connect/fan-out timeouts) under CHAOS_SECONDS (25) of
# CHAOS_THREADS (40) hostile clients (tests/peers/chaos_client.py) against hostile
# backends (tests/peers/chaos_backend.py), both driven by CHAOS_SEED (printed; default
# fixed). SIGHUP every few seconds alternates two configurations with different routes.
# Invariants, whatever the random outcomes:
#   - mux443 stays alive throughout;
#   - a reference connection (an echo through mux443, opened first) still echoes;
#   - a fresh connection is still served (no hang of a worker);
#   - terminated TLS relays a second record that arrived with the first (read ahead by
#     OpenSSL during detection) without waiting for more client bytes;
#   - once every chaos client is gone, mux443's open descriptors return to their
#     baseline (no leaked socket, pipe or connection);
#   - SIGTERM drains (the reference connection is closed by drain_timeout) and mux443
#     exits 0 with no AddressSanitizer / LeakSanitizer / UBSan report (stop_mux).
# Reproduce a run: CHAOS_SEED=N [CHAOS_SECONDS=S CHAOS_THREADS=T] KEEP_TMP=1 bash chaos.sh MUX443
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

SEED=${CHAOS_SEED:-20240611}
SECS=${CHAOS_SECONDS:-25}
THREADS=${CHAOS_THREADS:-40}
log "seed=$SEED seconds=$SECS threads=$THREADS (CHAOS_SEED=$SEED reproduces the random choices)"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" term ec ca term.test term.test
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=pass.test" -keyout "$P/pass.key" -out "$P/pass.crt" 2>/dev/null

PM=$(free_port)
PP=$(free_port)
declare -A BP=()
ROLES=(ref chaos tlspass ice0 ice1 iceerr icesilent iceclose icerst icebig icepartial tarpit down)
specs=()
for r in "${ROLES[@]}"; do
    BP[$r]=$(free_port)
    [[ $r == down ]] || specs+=("$r:${BP[$r]}")
done
# free_port may, rarely, hand out the same port twice: insist on distinct ones.
[[ $(printf '%s\n' "$PM" "$PP" "${BP[@]}" | sort -u | wc -l) == $((${#ROLES[@]} + 2)) ]] ||
    fail "free_port returned a duplicate port"
S() { echo "127.0.0.1:${BP[$1]}"; }

CHAOS_PASS_CERT=$P/pass.crt CHAOS_PASS_KEY=$P/pass.key \
    start_bg backend "$PY" "$PEERS/chaos_backend.py" "$SEED" "${specs[@]}"
wait_ready backend

# conf A|B: the two configurations SIGHUP alternates (same listeners and certificate,
# different routes).
conf() {
    cat >"$T/mux.ini.new" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
log_level = info
peek_timeout = 1s
connect_timeout = 1s
idle_timeout = 3s
drain_timeout = 3s
fanout_timeout = 500ms
ufrag_grace = 2s
ufrag_ttl = 5s

[listener px]
listen = 127.0.0.1:$PP
proxy_protocol = yes
peek_timeout = 800ms

[tls term]
cert = $P/term.crt
key = $P/term.key

[backend ref]
server = $(S ref)

[backend chaos]
server = $(S chaos)

[backend failover]
server = $(S down), $(S chaos)

[backend chaospx]
server = $(S chaos)
proxy_protocol = v2

[backend pass]
server = $(S tlspass)

[backend tarpit]
server = $(S tarpit), $(S chaos)
connect_timeout = 300ms

[backend media]
balance = ufrag
server = $(S ice0), $(S iceerr), $(S icesilent), $(S iceclose), $(S icerst), $(S icebig), $(S icepartial), $(S down), $(S ice1)

[backend media1]
balance = ufrag
server = $(S icerst), $(S ice1), $(S icesilent)

[route ref]
host = ref.test
backend = ref
idle_timeout = 300s

[route pass]
sni = pass.test
backend = pass
INI
    if [[ $1 == A ]]; then
        cat >>"$T/mux.ini.new" <<INI

[route]
http = chaos
websocket = chaos
stun = chaospx
ice-tcp = media
INI
    else
        cat >>"$T/mux.ini.new" <<INI

[route o1]
class = ice-tcp
ufrag = o1
backend = media1

[route]
http = failover
websocket = tarpit
stun = chaos
ice-tcp = media
default = chaos
on_timeout = chaos
INI
    fi
    mv "$T/mux.ini.new" "$T/mux.ini"
}

conf A
start_mux mux "$T/mux.ini"
MUXPID=$(pid_of mux)
fds() { find "/proc/$MUXPID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

REF='GET /ref HTTP/1.1\r\nHost: ref.test\r\n\r\n'
start_bg ref "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data "$REF" --hold
wait_ready ref
PINGS=0
ping_ref() { # WHEN
    PINGS=$((PINGS + 1))
    kill -USR1 "$(pid_of ref)"
    wait_log ref "hold: ping $PINGS (ok|FAILED)" 15
    assert_grep "hold: ping $PINGS ok" "$T/ref.log" "reference connection $1"
}
ping_ref "before the chaos"
# Let the reference connection's accept/connect settle, then take the baseline.
sleep 0.5
BASE=$(fds)
log "mux443 pid $MUXPID: $BASE descriptors open with the reference connection"

start_bg chaos "$PY" "$PEERS/chaos_client.py" "$SEED" 127.0.0.1 "$PM" "$PP" "$SECS" "$THREADS"
wait_log chaos 'chaos-client: seed=' 10
t0=$SECONDS
reloads=0
next=B
while kill -0 "$(pid_of chaos)" 2>/dev/null; do
    kill -0 "$MUXPID" 2>/dev/null || fail "mux443 died during the chaos"
    # A reload every ~5 s, alternating the two configurations.
    if ((SECONDS - t0 >= 5 * (reloads + 1) && SECONDS - t0 < SECS)); then
        conf "$next"
        kill -HUP "$MUXPID"
        reloads=$((reloads + 1))
        wait_count mux 'reload: .*mux\.ini loaded' "$reloads" 10
        log "reload $reloads: configuration $next (fds now $(fds))"
        [[ $next == A ]] && next=B || next=A
    fi
    ((SECONDS - t0 < SECS + 90)) || fail "chaos client still running after $((SECS + 90))s"
    sleep 0.2
done
wait_exit chaos 1
CLIENT_RC=$STOP_RC
grep -E '^chaos-client: ' "$T/chaos.log" >&2 || true
((CLIENT_RC == 0)) || fail "chaos_client.py exited $CLIENT_RC (a bug in the test peer: see chaos.log)"
kill -0 "$MUXPID" 2>/dev/null || fail "mux443 died during the chaos"
conns=$(sed -nE 's/^chaos-client: done conns=([0-9]+).*/\1/p' "$T/chaos.log")
((conns >= 100)) || fail "only ${conns:-0} chaos connections were made"
((reloads >= 2)) || fail "only $reloads reloads during the chaos"
assert_not_grep 'reload: .* is invalid|previous reload is still being applied' "$T/mux.log" "reloads"
# Back to the first configuration for the end.
conf A
kill -HUP "$MUXPID"
wait_count mux 'reload: .*mux\.ini loaded' $((reloads + 1)) 10

# Every chaos connection ends within idle_timeout/peek/connect/fan-out timeouts and the
# backends' hold limit: the descriptors must come back to the baseline.
deadline=$((SECONDS + 20))
while (($(fds) > BASE)); do
    if ((SECONDS >= deadline)); then
        ls -l "/proc/$MUXPID/fd" >"$T/fds.txt" 2>&1 || true
        fail "descriptor leak: $(fds) open, baseline $BASE (list in $T/fds.txt)"
    fi
    sleep 0.2
done
log "descriptors back to $(fds) (baseline $BASE)"

ping_ref "after the chaos"
out=$(client 127.0.0.1 "$PM" --data 'GET /fresh HTTP/1.1\r\nHost: ref.test\r\n\r\n' --shut-wr 2>/dev/null || true)
assert_contains "$out" "GET /fresh HTTP/1.1" "a fresh connection after the chaos"
out=$(client 127.0.0.1 "$PP" --proxy v2 --data 'GET /fresh2 HTTP/1.1\r\nHost: ref.test\r\n\r\n' --shut-wr 2>/dev/null || true)
assert_contains "$out" "GET /fresh2 HTTP/1.1" "a fresh connection on the PROXY listener after the chaos"

# Terminated TLS: a request and a second record in one TCP segment. OpenSSL reads both
# records ahead during detection; the second must still reach the backend (and its echo
# come back) without the client sending anything more.
out=$("$PY" "$PEERS/chaos_client.py" tls-two-records 127.0.0.1 "$PM" term.test ref.test 3 2>&1 || true)
assert_contains "$out" "tls-two-records: ok" "two TLS records in one segment through terminated TLS"

# SIGTERM with the reference connection still open: drained by drain_timeout.
stop_mux mux
assert_grep 'reason="drain timeout"' "$T/mux.log" "the reference connection closed by the drain"
stop ref
