#!/usr/bin/env bash
# UDP on 443, QUIC (issue 12 point 3): a flow opened by a client Initial (Chromium's,
# captured: tests/vectors/chromium-quic-initial-udp.bin) goes to the `quic` route, and
# every later datagram of that client socket follows it whatever its first byte (short
# headers, and bytes that look like STUN, DTLS, ChannelData or RTP), byte-exact both
# ways, while a STUN flow from another socket goes to its own backend. Debian 12 has no
# HTTP/3 server, so the backend is a recording UDP peer (tests/peers/udp_flows.py
# record). The close line and the metrics show the quic flow; --explain --udp routes the
# vector.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PA=$(free_port)
PH=$(free_port)
PT=$(free_port)
start_bg h3 "$PY" "$PEERS/udp_flows.py" record H "$PH"
start_bg turn "$PY" "$PEERS/udp_flows.py" backend T "$PT"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
udp = yes
workers = 2
admin = 127.0.0.1:$PA
udp_idle_timeout = 2s

[backend h3]
server = 127.0.0.1:$PH

[backend turn]
server = 127.0.0.1:$PT

[route]
quic = h3
stun = turn
INI

out=$("$MUX443" --explain --udp -c "$T/mux.ini" <"$VECTORS/chromium-quic-initial-udp.bin")
assert_contains "$out" "kind      quic"
assert_contains "$out" "quic      version 0x00000001"
assert_contains "$out" "side      quic"
assert_contains "$out" "route     quic ($T/mux.ini:"
assert_contains "$out" "backend   h3"
out=$(head -c 1199 "$VECTORS/chromium-quic-initial-udp.bin" |
    "$MUX443" --explain --udp -c "$T/mux.ini")
assert_contains "$out" "route     - (dropped: opens no flow)"

wait_ready h3
wait_ready turn
start_mux mux "$T/mux.ini"

rc=0
timeout 30 "$PY" "$PEERS/udp_flows.py" quic "$PM" "$VECTORS/chromium-quic-initial-udp.bin" \
    >"$T/quic.log" 2>&1 || rc=$?
cat "$T/quic.log" >&2
assert_eq 0 "$rc" "quic client exit status"
assert_grep '^quic done' "$T/quic.log"

# the backend got the captured Initial byte for byte, and all 11 datagrams from one
# source (the flow's one upstream socket)
assert_grep "^got [0-9]+ $(xxd -p "$VECTORS/chromium-quic-initial-udp.bin" | tr -d '\n')\$" \
    "$T/h3.log" "the Initial reached the backend byte-exact"
assert_eq 11 "$(grep -c '^got ' "$T/h3.log")" "datagrams at the quic backend"
assert_eq 1 "$(grep '^got ' "$T/h3.log" | cut -d' ' -f2 | sort -u | wc -l)" \
    "source ports the quic backend saw"

curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
assert_grep '^mux443_udp_flows_total\{class="quic"\} 1$' "$T/metrics.txt"
assert_grep '^mux443_udp_flows_open\{class="quic"\} 1$' "$T/metrics.txt"
assert_grep '^mux443_udp_flows_total\{class="stun"\} 1$' "$T/metrics.txt"
assert_grep '^mux443_udp_dropped_total\{reason="quic"\} 1$' "$T/metrics.txt"

wait_log mux 'udp flow=[0-9]+ .*class=quic ufrag=- route=quic backend=h3 server=127\.0\.0\.1:'"$PH"' dgrams_in=11 bytes_in=[0-9]+ dgrams_out=11 .*reason="idle timeout"' 10
wait_log mux 'udp flow=[0-9]+ .*class=stun .*route=stun backend=turn .*dgrams_in=2 .*reason="idle timeout"' 10
curl -fsS "http://127.0.0.1:$PA/metrics" >"$T/metrics.txt"
assert_grep '^mux443_udp_flows_open\{class="quic"\} 0$' "$T/metrics.txt"
