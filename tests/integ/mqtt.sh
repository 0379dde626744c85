#!/usr/bin/env bash
# MQTT through the one port: Debian's mosquitto broker behind mux443, mosquitto_sub and
# mosquitto_pub in front of it.
#   1. plain TCP: a message published arrives at the subscriber; the client identifier
#      is available to rules ([route sensors] mqtt_client = sensor-) and shows in the
#      close line; another client id goes to [route] mqtt;
#   2. TLS with ALPN: both clients verify mux443's certificate chain with the test CA and
#      offer ALPN x-amzn-mqtt-ca (AWS IoT's name for MQTT on 443); mux443 selects it
#      (because a route wants MQTT), terminates and routes class mqtts to the broker;
#      the message arrives.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"
for tool in mosquitto mosquitto_sub mosquitto_pub; do
    command -v "$tool" >/dev/null || { log "SKIP: $tool not installed"; exit 77; }
done

P=$T/pki
tls_ca "$P"
tls_leaf "$P" mqtt ec ca mqtt.test mqtt.test

PM=$(free_port)
PB=$(free_port)
cat >"$T/mosquitto.conf" <<CONF
listener $PB 127.0.0.1
allow_anonymous true
log_dest stderr
log_type all
persistence false
CONF
start_bg broker mosquitto -c "$T/mosquitto.conf"
wait_log broker 'Opening ipv4 listen socket'
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/mqtt.crt
key = $P/mqtt.key

[backend broker]
server = 127.0.0.1:$PB

[route sensors]
mqtt_client = sensor-
backend = broker

[route]
mqtt = broker
INI
start_mux mux "$T/mux.ini"

log "1. plain TCP: published on one client, received on the other"
start_bg sub mosquitto_sub -h 127.0.0.1 -p "$PM" -i sensor-sub -t h11/plain -C 1 -W 20
wait_log broker 'Received SUBSCRIBE from sensor-sub'
mosquitto_pub -h 127.0.0.1 -p "$PM" -i app-pub -t h11/plain -m hello-plain
wait_exit sub 20
assert_eq 0 "$STOP_RC" "mosquitto_sub exit status"
assert_grep '^hello-plain$' "$T/sub.log" "the message arrived"
wait_count mux 'class=mqtt mqtt_client="sensor-sub" route=sensors backend=broker' 1
wait_count mux 'class=mqtt mqtt_client="app-pub" route=mqtt backend=broker' 1

log "2. TLS with ALPN x-amzn-mqtt-ca"
# The clients connect to 127.0.0.1 (no name resolution in the test's namespace): they
# send no SNI and verify the chain against the test CA; --insecure only skips the
# host-name check, which an IP address could not pass.
tls=(--cafile "$P/ca.crt" --insecure --tls-alpn x-amzn-mqtt-ca)
start_bg tsub mosquitto_sub -h 127.0.0.1 -p "$PM" -i sensor-tsub -t h11/tls -C 1 -W 20 "${tls[@]}"
wait_log broker 'Received SUBSCRIBE from sensor-tsub'
mosquitto_pub -h 127.0.0.1 -p "$PM" -i app-tpub -t h11/tls -m hello-tls "${tls[@]}"
wait_exit tsub 20
assert_eq 0 "$STOP_RC" "mosquitto_sub (TLS) exit status"
assert_grep '^hello-tls$' "$T/tsub.log" "the message arrived through TLS"
wait_count mux 'class=mqtts sni="127.0.0.1" alpn="x-amzn-mqtt-ca" mqtt_client="app-tpub" route=mqtt' 1

log "3. mux443 selects the MQTT ALPN names (openssl s_client shows the choice)"
for proto in x-amzn-mqtt-ca mqtt; do
    out=$(openssl s_client -connect "127.0.0.1:$PM" -servername mqtt.test -alpn "$proto" \
        -CAfile "$P/ca.crt" -verify_return_error </dev/null 2>&1 || true)
    assert_contains "$out" "ALPN protocol: $proto" "ALPN $proto selected"
done
stop_mux mux

log "4. --explain shows the class, level and client identifier of captured CONNECTs"
for v in v31:3 v311:4 v5:5; do
    out=$("$MUX443" --explain -c "$T/mux.ini" <"$VECTORS/mosquitto-pub-${v%%:*}-connect.bin")
    assert_contains "$out" "class     mqtt" "${v%%:*}: class"
    assert_contains "$out" "mqtt      ${v#*:}" "${v%%:*}: level"
    assert_contains "$out" "client_id sensor-17" "${v%%:*}: client id"
    assert_contains "$out" "route     sensors " "${v%%:*}: route by client id prefix"
done
log "ok"
