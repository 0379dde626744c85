#!/usr/bin/env bash
# SIGHUP reload without dropping connections. Three long-lived relays are opened under
# the first configuration and ping through every reload: a WebSocket (ws_client.py
# --hold), a STUN-class connection to a TCP echo backend, and an ICE-TCP connection to
# ice_tcp.py (ops_ice_hold.py) accepted on a listener that a later reload removes.
#   reload 1: http route moves from web `one` to web `two`; the [tls] cert file is
#             rewritten in place (same path) with a new certificate. Before SIGHUP
#             openssl s_client still sees the old serial/subject, after it the new one.
#   reload 2: listener `extra2` added on a new port (it accepts), `extra1` removed (its
#             port refuses).
#   reload 3: a syntax error: the log names FILE:LINE, everything stays as it was
#             (routes, listeners, certificate), mux443_reloads_total{result="failed"} 1.
#   reload 4: fixed file; certificate switched certbot-style (the live/ symlink now
#             points to a new archive file); http back to `one`.
# mux443_reloads_total{result="ok"} follows (3 at the end); every held connection still
# relays at the end; new connections of every class follow the new configuration.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" v1 ec ca v1.site.test site.test
tls_leaf "$P" v2 ec ca v2.site.test site.test
tls_leaf "$P" v3 rsa ca v3.site.test site.test
mkdir -p "$T/live" "$T/archive"
cp "$P/v1.crt" "$T/archive/fullchain1.pem"
cp "$P/v1.key" "$T/archive/privkey1.pem"
ln -s ../archive/fullchain1.pem "$T/live/fullchain.pem"
ln -s ../archive/privkey1.pem "$T/live/privkey.pem"

PM=$(free_port)
PX1=$(free_port)
PX2=$(free_port)
PA=$(free_port)
PW1=$(free_port)
PW2=$(free_port)
PWS=$(free_port)
PE=$(free_port)
PI=$(free_port)
start_bg one "$PY" "$PEERS/http_server.py" one "$PW1"
start_bg two "$PY" "$PEERS/http_server.py" two "$PW2"
start_bg ws "$PY" "$PEERS/ws_echo.py" ws "$PWS"
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg ice "$PY" "$PEERS/ice_tcp.py" ice "$PI"

# conf WEB EXTRA_LISTENER_NAME EXTRA_PORT [BROKEN]
conf() {
    cat >"$T/mux.ini.new" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA

[listener $2]
listen = 127.0.0.1:$3

[tls]
cert = $T/live/fullchain.pem
key = $T/live/privkey.pem

[backend one]
server = 127.0.0.1:$PW1

[backend two]
server = 127.0.0.1:$PW2

[backend signalling]
server = 127.0.0.1:$PWS

[backend turn]
server = 127.0.0.1:$PE

[backend media]
server = 127.0.0.1:$PI
INI
    [[ -n ${4:-} ]] && echo "$4" >>"$T/mux.ini.new"
    cat >>"$T/mux.ini.new" <<INI

[route]
http = $1
websocket = signalling
stun = turn
ice-tcp = media
INI
    mv "$T/mux.ini.new" "$T/mux.ini"
}

STUN='\x00\x01\x00\x00\x21\x12\xa4\x42holdholdhold'
web_of() { # PORT: which web server answers a plain request through mux443 on PORT
    local b
    b=$(http_body "$1" /which)
    b=${b%% *}
    echo "${b:-none}"
}
cert_of() { # the serial and subject mux443 presents for site.test
    openssl s_client -connect "127.0.0.1:$PM" -servername site.test -CAfile "$P/ca.crt" \
        -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial -subject 2>/dev/null |
        tr '\n' ' ' || true
}
want_cert() { # NAME: the serial/subject of $P/NAME.crt, as cert_of prints it
    openssl x509 -in "$P/$1.crt" -noout -serial -subject | tr '\n' ' '
}
wait_for() { # WHAT SECONDS CMD...: polls until CMD succeeds
    local what=$1 secs=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.05
    done
}
web_is() { [[ $(web_of "$1") == "web:$2" ]]; }
refuses() { # PORT: a connect to PORT is refused
    ! "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)' "$1" 2>/dev/null
}
accepts() { ! refuses "$1"; }
cert_is() { [[ $(cert_of) == "$(want_cert "$1")" ]]; }
HOLDERS=(hws hstun hice)
PINGS=0
ping_all() { # WHEN
    PINGS=$((PINGS + 1))
    local h
    for h in "${HOLDERS[@]}"; do kill -USR1 "$(pid_of "$h")"; done
    for h in "${HOLDERS[@]}"; do wait_log "$h" "hold: ping $PINGS (ok|FAILED)" 15; done
    for h in "${HOLDERS[@]}"; do
        assert_grep "hold: ping $PINGS ok" "$T/$h.log" "held connection $h $1"
    done
}
new_conns() { # PORT WHEN: a new connection of each class (other than http) is relayed
    local out
    out=$("$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$1/new" "new-$2" 2>&1 || true)
    assert_contains "$out" "ws:ws echo=new-$2" "new WebSocket $2"
    out=$(client 127.0.0.1 "$1" --data "$STUN" --shut-wr --hex 2>/dev/null || true)
    assert_contains "$out" "000100002112a442" "new STUN connection $2"
    out=$(client 127.0.0.1 "$1" --ice-binding srv:cli --frame 2>/dev/null || true)
    assert_contains "$out" "type=0x0101" "new ICE-TCP connection $2"
}
reloads() { # OK FAILED
    wait_metric "$PA" 'mux443_reloads_total{result="ok"}' -ge "$1" 5
    metrics "$PA" "$T/r.prom"
    assert_eq "$1 $2" "$(mval "$T/r.prom" 'mux443_reloads_total{result="ok"}') $(mval "$T/r.prom" 'mux443_reloads_total{result="failed"}')" \
        "mux443_reloads_total ok/failed"
}

conf one extra1 "$PX1"
for p in one two ws echo ice; do wait_ready $p; done
start_mux mux "$T/mux.ini"
assert_eq "web:one" "$(web_of "$PM")" "http route at start"
cert_is v1 || fail "certificate at start: got '$(cert_of)', expected '$(want_cert v1)'"
reloads 0 0

start_bg hws "$PY" "$PEERS/ws_client.py" "ws://127.0.0.1:$PM/held" held --hold
start_bg hstun "$PY" "$PEERS/client.py" 127.0.0.1 "$PM" --data "$STUN" --hold
start_bg hice "$PY" "$PEERS/ops_ice_hold.py" 127.0.0.1 "$PX1" held:cli
for h in "${HOLDERS[@]}"; do wait_ready "$h"; done
ping_all "before any reload"

log "reload 1: http -> two, certificate file rewritten in place"
cat "$P/v2.crt" >"$T/archive/fullchain1.pem"
cat "$P/v2.key" >"$T/archive/privkey1.pem"
# Not reloaded yet: the old certificate is still served.
cert_is v1 || fail "certificate changed before SIGHUP: got '$(cert_of)'"
conf two extra1 "$PX1"
kill -HUP "$(pid_of mux)"
wait_count mux 'reload: .*mux\.ini loaded' 1 5
wait_for "http route to two" 5 web_is "$PM" two
wait_for "the new certificate (v2) after SIGHUP" 5 cert_is v2
reloads 1 0
ping_all "after reload 1"
new_conns "$PM" "after-reload-1"

log "reload 2: listener extra2 added, extra1 removed"
accepts "$PX1" || fail "extra1 ($PX1) does not accept before reload 2"
refuses "$PX2" || fail "port $PX2 accepts before extra2 exists"
conf two extra2 "$PX2"
kill -HUP "$(pid_of mux)"
wait_count mux 'reload: .*mux\.ini loaded' 2 5
wait_for "removed listener extra1 refusing" 5 refuses "$PX1"
wait_for "new listener extra2 serving" 5 web_is "$PX2" two
reloads 2 0
ping_all "after reload 2 (hice was accepted on the removed listener)"
new_conns "$PX2" "on-extra2"

log "reload 3: a syntax error"
conf one extra1 "$PX1" "[backend broken"
bad_line=$(grep -n '^\[backend broken$' "$T/mux.ini" | cut -d: -f1)
kill -HUP "$(pid_of mux)"
wait_log mux 'reload: .* is invalid: the running configuration stays in force' 5
assert_grep "reload: $T/mux\\.ini:$bad_line: " "$T/mux.log" "the reload error names FILE:LINE"
reloads 2 1
assert_eq "web:two" "$(web_of "$PM")" "http route after a failed reload"
refuses "$PX1" || fail "a failed reload brought listener extra1 back"
web_is "$PX2" two || fail "listener extra2 lost after a failed reload"
cert_is v2 || fail "certificate after a failed reload: got '$(cert_of)'"
ping_all "after the failed reload"

log "reload 4: certbot-style renewal (symlink to a new archive file), http -> one"
cp "$P/v3.crt" "$T/archive/fullchain2.pem"
cp "$P/v3.key" "$T/archive/privkey2.pem"
ln -sfn ../archive/fullchain2.pem "$T/live/fullchain.pem"
ln -sfn ../archive/privkey2.pem "$T/live/privkey.pem"
conf one extra2 "$PX2"
kill -HUP "$(pid_of mux)"
wait_count mux 'reload: .*mux\.ini loaded' 3 5
wait_for "http route back to one" 5 web_is "$PM" one
wait_for "the renewed certificate (v3)" 5 cert_is v3
reloads 3 1
web_is "$PX2" one || fail "extra2 does not follow the new http route"
new_conns "$PM" "after-reload-4"

ping_all "at the end"
# None of the held connections was closed by a reload.
assert_not_grep 'conn=[0-9]+ .*path="/held".*reason=' "$T/mux.log" "held WebSocket closed"
assert_not_grep 'conn=[0-9]+ .*ufrag="held".*reason=' "$T/mux.log" "held ICE-TCP closed"
for h in "${HOLDERS[@]}"; do stop "$h"; done
wait_close mux 'path="/held"' 5
wait_close mux 'ufrag="held"' 5
stop_mux mux
