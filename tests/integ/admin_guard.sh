#!/usr/bin/env bash
# The admin API against web pages and hostile local clients (README "Security", admin).
#  1. A browser's cross-origin "simple" request (Origin: http://evil.example, text/plain
#     body) gets 403 and registers nothing; text/plain without Origin gets 415; a JSON
#     body needs application/json and the line form text/x-mux443-ufrags.
#  2. DNS rebinding: Host: rebind.evil.example (with or without port) gets 421; IP
#     literals (v4, [v6]), localhost and a name in admin_hosts are served; two Host
#     headers get 400. An Origin listed in admin_origins is served.
#  3. admin_token_file: 401 without or with a wrong bearer token, 200 with it; GET
#     /healthz stays open; an unreadable or too short token file is a -t error at
#     FILE:LINE.
#  4. At most 64 admin connections: a flood of 100 silent ones gets the rest closed at
#     once (logged); after it /healthz answers again.
#  5. Out of descriptors (prlimit --nofile): accepting pauses for 1 s (logged) instead of
#     spinning (CPU of the process over 2 s under 0.5 s); served again after the flood.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
PE=$(free_port)
write_conf() { # extra [mux443] lines in $1
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1
admin = 127.0.0.1:$PA
$1

[backend media]
server = 127.0.0.1:$PE
balance = ufrag

[route]
ice-tcp = media
INI
}
write_conf $'admin_hosts = mux.internal\nadmin_origins = https://ops.example'
start_mux mux "$T/mux.ini"

# req EXPECTED WHAT CURL-ARGS... : one request to the admin API; asserts the status.
req() {
    local want=$1 what=$2 code
    shift 2
    code=$(curl -sS --max-time 5 -H 'Expect:' -o "$T/resp" -w '%{http_code}' "$@" 2>"$T/curl.err") ||
        fail "$what: curl failed: $(cat "$T/curl.err")"
    assert_eq "$want" "$code" "$what (body: $(head -c 200 "$T/resp"))"
}
U="http://127.0.0.1:$PA"
wait_healthz() { # WHAT: polls until /healthz answers 200 again
    local deadline=$((SECONDS + 15))
    until [[ $(admin_get "$PA" /healthz "$T/hz") == 200 ]]; do
        ((SECONDS < deadline)) || fail "/healthz not served after $1"
        sleep 0.2
    done
}
entries() { metrics "$PA" "$T/m.prom" && mval "$T/m.prom" mux443_ufrag_entries; }

log "1. cross-origin and content types"
req 403 "cross-origin text/plain POST" -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' \
    -d "Evil1 127.0.0.1:$PE" "$U/ufrags"
assert_contains "$(cat "$T/resp")" "cross-origin" "403 body"
req 403 "cross-origin GET /ufrags (reads the table)" -H 'Origin: http://evil.example' "$U/ufrags"
req 403 "Origin: null (sandboxed page)" -H 'Origin: null' "$U/metrics"
req 415 "text/plain POST without Origin" -H 'Content-Type: text/plain' -d "Evil2 127.0.0.1:$PE" "$U/ufrags"
req 415 "form POST (curl -d default type)" -d "Evil3 127.0.0.1:$PE" "$U/ufrags"
req 400 "application/json with a line body" -H 'Content-Type: application/json' \
    -d "Evil4 127.0.0.1:$PE" "$U/ufrags"
req 400 "text/x-mux443-ufrags with a JSON body" -H 'Content-Type: text/x-mux443-ufrags' \
    -d "{\"ufrag\":\"Evil5\",\"server\":\"127.0.0.1:$PE\"}" "$U/ufrags"
assert_eq 0 "$(entries)" "entries after the refused registrations"
req 201 "application/json; charset=utf-8 JSON" -H 'Content-Type: application/json; charset=utf-8' \
    -d "{\"ufrag\":\"Good1\",\"server\":\"127.0.0.1:$PE\"}" "$U/ufrags"
req 201 "text/x-mux443-ufrags lines" -H 'Content-Type: text/x-mux443-ufrags' -d "Good2 127.0.0.1:$PE" "$U/ufrags"
req 201 "allowed Origin (admin_origins)" -H 'Origin: https://ops.example' \
    -H 'Content-Type: application/json' -d "{\"ufrag\":\"Good3\",\"server\":\"127.0.0.1:$PE\"}" "$U/ufrags"
assert_eq 3 "$(entries)" "entries after the accepted registrations"

log "2. Host (DNS rebinding)"
req 421 "Host: rebind.evil.example" -H 'Host: rebind.evil.example' "$U/ufrags"
req 421 "Host: rebind.evil.example:PORT" -H "Host: rebind.evil.example:$PA" "$U/metrics"
req 421 "Host: 127.0.0.1.evil.example" -H 'Host: 127.0.0.1.evil.example' "$U/routes"
req 421 "Host: localhost.evil.example" -H 'Host: localhost.evil.example' "$U/routes"
req 421 "Host: [::1 (unclosed)" -H 'Host: [::1' "$U/routes"
# curl sends one Host header at most: the raw client sends two.
out=$(client 127.0.0.1 "$PA" --data 'GET /routes HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: rebind.evil.example\r\n\r\n' \
    --timeout 5 2>/dev/null || true)
assert_contains "$out" "HTTP/1.1 400" "two Host headers: status"
assert_contains "$out" "more than one Host header" "two Host headers: body"
req 200 "Host: 127.0.0.1:PORT" "$U/routes"
req 200 "Host: [::1]:PORT" -H "Host: [::1]:$PA" "$U/routes"
req 200 "Host: localhost" -H 'Host: localhost' "$U/routes"
req 200 "Host: name in admin_hosts" -H "Host: MUX.internal:$PA" "$U/routes"

log "3. admin_token_file"
printf 'not-long\n' >"$T/short.token"
write_conf "admin_token_file = $T/short.token"
line=$(grep -n '^admin_token_file' "$T/mux.ini" | cut -d: -f1)
rc=0
"$MUX443" -t -c "$T/mux.ini" >"$T/t.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t with a short token"
assert_grep "^$T/mux.ini:$line: \\[mux443\\] admin_token_file: the token must be" "$T/t.out"
write_conf "admin_token_file = $T/none.token"
rc=0
"$MUX443" -t -c "$T/mux.ini" >"$T/t.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t with a missing token file"
assert_grep "^$T/mux.ini:$line: \\[mux443\\] admin_token_file: cannot read the token file" "$T/t.out"
TOKEN=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
printf '%s\n' "$TOKEN" >"$T/admin.token"
chmod 600 "$T/admin.token"
write_conf "admin_token_file = $T/admin.token"
kill -HUP "$(pid_of mux)"
wait_log mux 'reload: .* loaded' 10
req 401 "GET /metrics without a token" "$U/metrics"
grep -qi 'www-authenticate: bearer' < <(curl -s -D - -o /dev/null "$U/metrics") ||
    fail "401 without WWW-Authenticate: Bearer"
req 401 "GET /ufrags with a wrong token" -H "Authorization: Bearer ${TOKEN}x" "$U/ufrags"
req 401 "GET /ufrags with a token prefix" -H "Authorization: Bearer ${TOKEN:0:10}" "$U/ufrags"
req 401 "POST /ufrags without a token" -H 'Content-Type: application/json' \
    -d "{\"ufrag\":\"NoTok1\",\"server\":\"127.0.0.1:$PE\"}" "$U/ufrags"
req 200 "GET /ufrags with the token" -H "Authorization: Bearer $TOKEN" "$U/ufrags"
req 201 "POST /ufrags with the token" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"ufrag\":\"Tok1\",\"server\":\"127.0.0.1:$PE\"}" "$U/ufrags"
req 200 "GET /healthz without a token (probes)" "$U/healthz"
# A browser (the status page) logs in with Basic, any user name, the token as password.
grep -qi 'www-authenticate: basic' < <(curl -s -D - -o /dev/null "$U/status") ||
    fail "401 without a Basic challenge for browsers"
req 200 "GET /status.json with Basic and the token" -u "operator:$TOKEN" "$U/status.json"
req 401 "GET /status.json with Basic and a wrong password" -u "operator:${TOKEN}x" "$U/status.json"
req 401 "DELETE /ufrags/Tok1 without a token" -X DELETE "$U/ufrags/Tok1"
req 403 "the token does not lift the Origin check" -H "Authorization: Bearer $TOKEN" \
    -H 'Origin: http://evil.example' "$U/metrics"

log "4. at most 64 admin connections"
start_bg flood "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PA" 100
wait_ready flood 20
wait_log mux 'admin: 64 connections open: closing new ones' 10
stop flood
wait_healthz "the admin flood"
stop_mux mux

log "5. out of descriptors"
command -v prlimit >/dev/null || fail "prlimit (util-linux) is required"
write_conf ""
start_bg muxfd prlimit --nofile=40:40 "$MUX443" -c "$T/mux.ini"
wait_log muxfd 'ready: listening on' 20
PID=$(pid_of muxfd)
start_bg flood2 "$PY" "$PEERS/ops_flood.py" 127.0.0.1 "$PA" 60
wait_ready flood2 20
wait_log muxfd 'admin: accept paused for 1s' 10
t0=$(cpu_ticks "$PID")
w0=$(date +%s%3N)
sleep 2 # a measurement window, not a synchronisation
t1=$(cpu_ticks "$PID")
w1=$(date +%s%3N)
cpu_ms=$(((t1 - t0) * 1000 / $(getconf CLK_TCK)))
log "CPU while the admin flood holds every descriptor: ${cpu_ms} ms over $((w1 - w0)) ms"
((cpu_ms < 500)) || fail "mux443 used ${cpu_ms} ms of CPU in $((w1 - w0)) ms: the admin accept spins"
stop flood2
wait_healthz "the descriptor flood"
stop_mux muxfd
