#!/usr/bin/env bash
# Trusted PROXY senders only.
#  1. [listener lb] proxy_protocol = yes, proxy_from = 127.0.0.2/32: a PROXY connection
#     from 127.0.0.2 is relayed (the echo backend answers); one from 127.0.0.1 is closed
#     before a byte is read, counted as mux443_refused_total{limit="proxy_untrusted"}.
#  2. proxy_protocol = yes without proxy_from: `mux443 -t` warns loudly (and passes).
#  3. A client of a listener without proxy_protocol that starts with a PROXY v1 or v2
#     header is refused (a spoofing attempt), not sent to `default`.
#  4. proxy_from with a bad prefix: -t fails with FILE:LINE.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PL=$(free_port)
PA=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = 127.0.0.1:$PA
workers = 2

[listener lb]
listen = 127.0.0.1:$PL
proxy_protocol = yes
proxy_from = 127.0.0.2/32, 10.0.0.0/8

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
"$MUX443" -t -c "$T/mux.ini" >"$T/t1.out" 2>&1 || fail "-t refused: $(cat "$T/t1.out")"
assert_not_grep 'without proxy_from' "$T/t1.out" "no warning when proxy_from is set"
start_mux mux "$T/mux.ini"

log "1. PROXY from a trusted and from an untrusted sender"
out=$(client 127.0.0.1 "$PL" --bind 127.0.0.2 --proxy v1 --data '\xfftrusted\n' --shut-wr 2>"$T/c1.err") || true
assert_contains "$out" "trusted" "the trusted load balancer's connection is relayed"
out=$(client 127.0.0.1 "$PL" --bind 127.0.0.1 --proxy v1 --data '\xffspoof\n' --shut-wr 2>"$T/c2.err") || true
[[ -z $out ]] || fail "an untrusted PROXY sender was relayed: $out"
wait_metric "$PA" 'mux443_refused_total{limit="proxy_untrusted"}' -eq 1 5
assert_grep 'listener lb: 127\.0\.0\.1:[0-9]+ is not in proxy_from' "$T/mux.log" "refusal logged"
assert_not_grep 'spoof' "$T/echo.log" "the untrusted sender's bytes reached the backend"

log "3. a PROXY header on a listener without proxy_protocol"
for v in v1 v2; do
    out=$(client 127.0.0.1 "$PM" --proxy "$v" --data '\xffspoof-'"$v"'\n' --shut-wr 2>"$T/p$v.err") || true
    [[ -z $out ]] || fail "PROXY $v on a plain listener was relayed: $out"
done
wait_count mux 'reason="PROXY header on a listener that does not expect one \(listener main has no proxy_protocol\)"' 2 5
assert_not_grep 'spoof-v' "$T/echo.log" "a PROXY header reached the default backend"
out=$(client 127.0.0.1 "$PM" --data '\xffplain\n' --shut-wr 2>"$T/c3.err") || true
assert_contains "$out" "plain" "a plain client is still relayed to default"
stop_mux mux

log "2. proxy_protocol = yes without proxy_from: -t warns"
sed -i '/^proxy_from/d' "$T/mux.ini"
"$MUX443" -t -c "$T/mux.ini" >"$T/t2.out" 2>&1 || fail "-t refused: $(cat "$T/t2.out")"
assert_grep 'mux\.ini:[0-9]+: \[listener lb\] proxy_protocol = yes without proxy_from: ANY client' \
    "$T/t2.out" "the -t warning"

log "4. a malformed proxy_from"
sed -i 's/^proxy_protocol = yes/proxy_protocol = yes\nproxy_from = 10.0.0.0\/33/' "$T/mux.ini"
if "$MUX443" -t -c "$T/mux.ini" >"$T/t3.out" 2>&1; then fail "-t accepted proxy_from = 10.0.0.0/33"; fi
assert_grep 'mux\.ini:[0-9]+: \[listener lb\] proxy_from: not an address or prefix \(got .10\.0\.0\.0/33.' \
    "$T/t3.out" "the -t error"
