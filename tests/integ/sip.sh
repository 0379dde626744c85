#!/usr/bin/env bash
# SIP (RFC 3261) through the one port, with real SIP peers from Debian:
#   1. sipp as UAC over plain TCP to sipp as UAS behind mux443: calls complete (INVITE,
#      200, ACK, BYE on the one connection), sipp exits 0; the connection is class sip;
#   2. two SIP domains: a Request-URI for sip-b.test goes to the second UAS
#      ([route sipb] class = sip, host = sip-b.test), everything else to [route] sip;
#   3. SIP over TLS (SIPS): a TLS client verifying mux443's certificate with the test
#      CA sends OPTIONS through mux443's TLS termination and gets the server's 200 OK;
#      the close line says class sips.
#   4. --explain on the captured flights;
#   5. Kamailio (Debian's kamailio, usrloc + registrar, no database) as the registrar
#      for sip-a.test behind mux443: sipp registers through the one port over TCP and
#      gets Kamailio's 200 OK; Kamailio logs the binding. Debian's sipp has no TLS, and sipsak 0.9.8.1's
#      TLS mode (GnuTLS) gives up after its first read ("nothing received, select
#      returned error") even when the 200 OK is on the wire, so the client is Python's
#      ssl module sending the request a SIP UA sends.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"
command -v sipp >/dev/null || { log "SKIP: sipp not installed"; exit 77; }

P=$T/pki
tls_ca "$P"
tls_leaf "$P" sip ec ca sip.test sip.test

PM=$(free_port)
PA=$(free_port)
PB=$(free_port)
PO=$(free_port)
PK=$(free_port)
mkdir -p "$T/kam"
cat >"$T/kamailio.cfg" <<CFG
#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
disable_tcp=no
auto_aliases=no
listen=tcp:127.0.0.1:$PK
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
request_route {
    if (is_method("REGISTER")) {
        if (!save("location")) sl_reply_error();
        xlog("L_NOTICE", "registered \$tu from \$si\n");
        exit;
    }
    sl_send_reply("404", "Not here");
}
CFG
cd "$T" || exit 1 # sipp writes its logs in the working directory
start_bg uasa sipp -sn uas -t t1 -i 127.0.0.1 -p "$PA" -nostdin -trace_err
start_bg uasb sipp -sn uas -t t1 -i 127.0.0.1 -p "$PB" -nostdin -trace_err
start_bg opts sipp -sf "$PEERS/sip/options_uas.xml" -t t1 -i 127.0.0.1 -p "$PO" -nostdin
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/sip.crt
key = $P/sip.key

[backend sipa]
server = 127.0.0.1:$PA
[backend sipb]
server = 127.0.0.1:$PB
[backend opts]
server = 127.0.0.1:$PO
[backend kamailio]
server = 127.0.0.1:$PK

[route registrar]
class = sip
host = sip-a.test
backend = kamailio

[route sipb]
class = sip
host = sip-b.test
backend = sipb

[route options]
class = sip
tls = yes
backend = opts

[route]
sip = sipa
INI
start_mux mux "$T/mux.ini"

log "1. sipp UAC over plain TCP through mux443: 3 calls complete"
sipp -sn uac -t t1 -i 127.0.0.1 -m 3 -l 1 -s bob -nostdin -timeout 20s -timeout_error \
    "127.0.0.1:$PM" >"$T/uac1.out" 2>&1 || fail "sipp UAC exited $? ($(tail -5 "$T/uac1.out"))"
wait_count mux 'class=sip .*route=sip backend=sipa' 1
assert_grep 'sip_method="INVITE"' "$T/mux.log" "the close line names the method"

log "2. a Request-URI for sip-b.test reaches the second server"
sipp -sd uac >"$T/uac-b.xml" 2>/dev/null || true # sipp exits 99 after a dump
sed -i 's/sip:\[service\]@\[remote_ip\]:\[remote_port\]/sip:[service]@sip-b.test/g' "$T/uac-b.xml"
sipp -sf "$T/uac-b.xml" -t t1 -i 127.0.0.1 -m 2 -l 1 -s carol -nostdin -timeout 20s \
    -timeout_error "127.0.0.1:$PM" >"$T/uac2.out" 2>&1 || fail "sipp UAC (sip-b.test) exited $?"
wait_count mux 'class=sip host="sip-b.test".*route=sipb backend=sipb' 1
assert_eq 1 "$(count_log mux 'route=sip backend=sipa')" "domain A got only the first client"

log "3. OPTIONS over TLS (test CA) gets 200 OK"
req='OPTIONS sip:alice@sip.test SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-h11\r\n'
req+='From: <sip:probe@sip.test>;tag=1\r\nTo: <sip:alice@sip.test>\r\nCall-ID: h11@sip.test\r\n'
req+='CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n'
"$PY" "$PEERS/tls_client.py" 127.0.0.1 "$PM" --sni sip.test --ca "$P/ca.crt" --data "$req" \
    --timeout 3 >"$T/sips.out" 2>&1 || fail "TLS client: $(cat "$T/sips.out")"
assert_grep '^reply: SIP/2.0 200 OK' "$T/sips.out" "the server's answer came back through TLS"
wait_count mux 'class=sips .*route=options backend=opts' 1
stop_mux mux

log "4. --explain shows the class, method and Request-URI host of captured flights"
for v in sipp-uac-tcp-invite:INVITE sipsak-options-tcp:OPTIONS; do
    out=$("$MUX443" --explain -c "$T/mux.ini" <"$VECTORS/${v%%:*}.bin")
    assert_contains "$out" "$(printf 'class     sip\n')" "${v%%:*}: class"
    assert_contains "$out" "method    ${v#*:}" "${v%%:*}: method"
    assert_contains "$out" "host      127.0.0.1" "${v%%:*}: Request-URI host"
    assert_contains "$out" "route     sip " "${v%%:*}: route"
done

if command -v kamailio >/dev/null; then
    log "5. sipp registers with Kamailio through mux443 over TCP"
    start_bg kam kamailio -f "$T/kamailio.cfg" -DD -E -Y "$T/kam"
    wait_log kam 'main\(\): processes'
    # Kamailio's TCP process opens its socket just after that line: poll for it.
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PK") 2>/dev/null && break; sleep 0.05; done
    start_mux mux "$T/mux.ini"
    sipp -sf "$PEERS/sip/register_uac.xml" -t t1 -i 127.0.0.1 -m 1 -s alice -nostdin \
        -timeout 20s -timeout_error "127.0.0.1:$PM" >"$T/reg.out" 2>&1 ||
        fail "sipp REGISTER exited $? ($(tail -5 "$T/reg.out"))"
    wait_log kam 'registered sip:alice@sip-a.test'
    wait_count mux 'class=sip host="sip-a.test" sip_method="REGISTER" route=registrar backend=kamailio' 1
    stop_mux mux
else
    log "5. skipped: kamailio not installed"
fi
log "ok"
