#!/usr/bin/env bash
# Counters that add up and structured logs. With log_format = json every line mux443
# writes is one JSON object; after a mix of connections (plain HTTP, HTTPS, a client that
# connects and sends nothing, unrecognised bytes, a failed TLS handshake, bytes cut short
# during detection, a peek timeout, refusals by max_connections_per_client) the sum of
# mux443_connections_total over every class equals mux443_connections_accepted_total;
# connection ids follow the order of acceptance across workers; a client that sends no
# byte is logged at info; an unrecognised protocol's explanation is in "why", not
# repeated in "reason".
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test

PM=$(free_port)
PA=$(free_port)
PWEB=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA
peek_timeout = 4s ; the three holders below must outlive the 4th client, even on a loaded machine
max_connections_per_client = 3
log_format = json

[tls]
cert = $P/site.crt
key = $P/site.key

[backend web]
server = 127.0.0.1:$PWEB

[route]
http = web
INI
wait_ready web
start_mux mux "$T/mux.ini"

log "a mix of connections, one after the other"
for i in 1 2 3; do
    assert_contains "$(http_body "$PM" "/n$i")" "path=/n$i" "plain HTTP $i"
done
body=$(curl -s --max-time 5 --cacert "$P/ca.crt" --resolve "site.test:$PM:127.0.0.1" \
    "https://site.test:$PM/tls" || true)
assert_contains "$body" "path=/tls" "HTTPS through mux443"
"$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()' "$PM"
wait_log mux '"reason":"client closed without sending a byte"' 5
# Client-controlled bytes in a logged field: a quote, a backslash, a tab, UTF-8.
client 127.0.0.1 "$PM" --data 'GET /q HTTP/1.0\r\nHost: h"\\\t\xc3\xa9\r\n\r\n' --timeout 3 >/dev/null 2>&1 || true
wait_log mux '"path":"/q"' 5
client 127.0.0.1 "$PM" --data '\xff\xfegarbage\r\n' --timeout 3 >/dev/null 2>&1 || true
wait_log mux '"class":"unknown"' 5
{
    cat "$VECTORS/openssl-s_client-clienthello.bin"
    printf 'this is not a TLS record at all\r\n'
} >"$T/badtls.bin"
client 127.0.0.1 "$PM" --file "$T/badtls.bin" --timeout 3 >/dev/null 2>&1 || true
wait_log mux 'TLS handshake failed' 5
client 127.0.0.1 "$PM" --data 'GET /half' --timeout 0.3 --shut-wr >/dev/null 2>&1 || true
wait_log mux 'client closed during detection after 9 bytes' 5

log "three silent clients hold the per-client limit; a fourth is refused"
for i in 1 2 3; do
    start_bg "hold$i" "$PY" -c 'import socket,sys,time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(30)' "$PM"
    wait_ready "hold$i"
done
wait_metric "$PA" 'mux443_connections_accepted_total' -ge 12
client 127.0.0.1 "$PM" --data 'GET / HTTP/1.0\r\n\r\n' --timeout 3 >/dev/null 2>&1 || true
wait_metric "$PA" 'mux443_refused_total{limit="per_client"}' -ge 1
# The held ones time out (peek_timeout): every connection is now closed and counted.
wait_metric "$PA" 'mux443_connections_total{class="timeout"}' -ge 3

metrics "$PA" "$T/m.prom"
accepted=$(mval "$T/m.prom" mux443_connections_accepted_total)
sum=$(awk '/^mux443_connections_total\{/ { s += $2 } END { print s }' "$T/m.prom")
log "accepted=$accepted, sum over classes=$sum"
grep '^mux443_connections_total{' "$T/m.prom" >&2
assert_eq 13 "$accepted" "connections accepted"
assert_eq "$accepted" "$sum" "sum of mux443_connections_total over classes"
for want in http=4 https=1 unknown=1 timeout=3 tls-failed=1 closed=2 refused=1; do
    assert_eq "${want#*=}" "$(mval "$T/m.prom" "mux443_connections_total{class=\"${want%=*}\"}")" \
        "connections of class ${want%=*}"
done

assert_not_grep '^mux443_ufrag' "$T/m.prom" "ufrag series without a balance = ufrag backend"
[[ $(mval "$T/m.prom" process_max_fds) =~ ^[0-9]+$ ]] || fail "process_max_fds missing"

log "the log: JSON lines, ids in order of acceptance, levels, why without repetition"
"$PY" - "$T/mux.log" <<'PYEOF' || fail "JSON log: see above"
import json, sys
conns = []
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith(("==", "    #")) or not line.strip():
        continue  # sanitizer output is not ours
    obj = json.loads(line)  # every line of mux443 is one JSON object
    assert obj["ts"].endswith("Z") and obj["level"] in ("error", "warn", "info", "debug"), obj
    if "conn" in obj and "reason" in obj:
        conns.append(obj)
for key in ("conn", "client", "listener", "class", "route", "backend", "server",
            "bytes_in", "bytes_out", "dur", "reason"):
    assert all(key in c for c in conns), key
assert all(isinstance(c["conn"], int) and isinstance(c["bytes_in"], int) for c in conns)
# The first nine connections were made one after the other: ids in that order.
first = sorted(conns, key=lambda c: c["conn"])[:9]
ids = [c["conn"] for c in first]
assert ids == list(range(ids[0], ids[0] + 9)), ids
# Client bytes: as the text line shows them (\xHH), then JSON-escaped.
odd = [c for c in conns if c.get("path") == "/q"]
assert len(odd) == 1 and odd[0]["host"] == "h\\x22\\x5c\\x09\\xc3\\xa9", odd
paths = [c.get("path") for c in first[:3]]
assert paths == ["/n1", "/n2", "/n3"], paths
empty = [c for c in conns if c["reason"] == "client closed without sending a byte"]
assert empty and all(c["level"] == "info" for c in empty), empty
unknown = [c for c in conns if c["class"] == "unknown"]
assert len(unknown) == 1 and unknown[0]["why"], unknown
assert unknown[0]["why"] not in unknown[0]["reason"], unknown[0]
assert unknown[0]["reason"] == "unrecognised protocol, and no [route] default", unknown[0]
print("json log ok:", len(conns), "close lines, ids", ids)
PYEOF
for i in 1 2 3; do stop "hold$i"; done
stop_mux mux
log "PASS"
