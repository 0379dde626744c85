#!/usr/bin/env bash
# The SIP, MQTT and SSH probes inside TLS that mux443 terminates see the first flight
# however the client spread it over TLS records: a Python ssl client sends the captured
# flights (tests/vectors: sipsak's OPTIONS, sipp's INVITE, mosquitto_pub's CONNECT 3.1.1
# and 5.0, OpenSSH's identification string) one SSL write per piece, so one TLS record
# per piece: one byte per record, 2, 3 and 7 bytes, 1 byte then the rest, the rest after
# the first 5 and 20 bytes, seeded random 1..16-byte pieces, and the whole flight in one
# record. Every time:
#   - the close line says class sips / mqtts / ssh-tls and names the right backend;
#   - the backend (an echo) received the flight unchanged (its sha256 on EOF), and the
#     client got it back byte for byte, then a close_notify.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" srv ec ca sip.test sip.test mqtt.test ssh.test

PM=$(free_port)
PSIP=$(free_port)
PMQ=$(free_port)
PSSH=$(free_port)
start_bg sipbe "$PY" "$PEERS/tcp_echo.py" sipbe "$PSIP"
start_bg mqttbe "$PY" "$PEERS/tcp_echo.py" mqttbe "$PMQ"
start_bg sshbe "$PY" "$PEERS/tcp_echo.py" sshbe "$PSSH"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/srv.crt
key = $P/srv.key

[backend sipbe]
server = 127.0.0.1:$PSIP
[backend mqttbe]
server = 127.0.0.1:$PMQ
[backend sshbe]
server = 127.0.0.1:$PSSH

[route]
sip = sipbe
mqtt = mqttbe
ssh = sshbe
INI
for p in sipbe mqttbe sshbe; do wait_ready "$p"; done
start_mux mux "$T/mux.ini"

declare -A want
splits=(1 2 3 7 "1,9999" "5,9999" "20,9999" random:1 random:2 9999)
n=0
for v in sipsak-options-tcp:sip.test:sips:sipbe sipp-uac-tcp-invite:sip.test:sips:sipbe \
    mosquitto-pub-v311-connect:mqtt.test:mqtts:mqttbe mosquitto-pub-v5-connect:mqtt.test:mqtts:mqttbe \
    openssh-client-ident:ssh.test:ssh-tls:sshbe; do
    IFS=: read -r vec sni class be <<<"$v"
    f=$VECTORS/$vec.bin
    sum=$(sha256sum <"$f" | cut -d' ' -f1)
    log "$vec inside TLS as $class, in ${#splits[@]} record layouts"
    for s in "${splits[@]}"; do
        n=$((n + 1))
        before=$(count_log "$be" "eof in=$(stat -c %s "$f") in_sha256=$sum ")
        "$PY" "$PEERS/tls_records.py" 127.0.0.1 "$PM" --sni "$sni" --ca "$P/ca.crt" \
            --file "$f" --split "$s" >"$T/c$n.out" 2>&1 || fail "$vec split $s: $(cat "$T/c$n.out")"
        assert_grep "bytes=$(stat -c %s "$f") sha256=$sum echo=ok" "$T/c$n.out" "$vec split $s: echoed"
        wait_count "$be" "eof in=$(stat -c %s "$f") in_sha256=$sum " $((before + 1))
        want[$class]=$((${want[$class]:-0} + 1))
        wait_count mux "class=$class sni=\"$sni\".* backend=$be( |$)" "${want[$class]}"
    done
done
wait_count mux 'conn=[0-9]+ .*reason=' "$n"
assert_eq "$n" "$(close_lines mux 'class=(sips|mqtts|ssh-tls) ' | wc -l)" \
    "every connection was classified inside TLS"
log "ok"
