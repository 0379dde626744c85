#!/usr/bin/env bash
# Metric series follow the configuration that runs, not the files that were read.
#  1. A rejected reload (a file adding [backend gone] and [route gone], plus a syntax
#     error) registers nothing: /metrics has no backend="gone" and no route="gone".
#     Regression: series were registered while the file was parsed, so a rejected file
#     left them in /metrics for good.
#  2. A reload that removes [backend extra]: its mux443_backend_server_up line goes away
#     once no snapshot uses it (its counters stay: they are monotonic), the other
#     backend's stays. Regression: gauges of servers no configuration used any more
#     were still reported as up.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
PW=$(free_port)
PX=$(free_port)
PG=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PW"
start_bg extra "$PY" "$PEERS/tcp_echo.py" extra "$PX"

conf() { # EXTRA_BACKEND(yes|no) [MORE_TEXT]
    {
        cat <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA

[backend web]
server = 127.0.0.1:$PW
INI
        [[ $1 == yes ]] && printf '\n[backend extra]\nserver = 127.0.0.1:%s\n' "$PX"
        [[ -n ${2:-} ]] && printf '\n%b\n' "$2"
        printf '\n[route]\nhttp = web\n'
        [[ $1 == yes ]] && printf 'stun = extra\n'
    } >"$T/mux.ini.new"
    mv "$T/mux.ini.new" "$T/mux.ini"
}
UP_WEB="mux443_backend_server_up{backend=\"web\",server=\"127.0.0.1:$PW\"}"
UP_EXTRA="mux443_backend_server_up{backend=\"extra\",server=\"127.0.0.1:$PX\"}"
CONNECTS_EXTRA="mux443_backend_connects_total{backend=\"extra\",server=\"127.0.0.1:$PX\"}"

conf yes
wait_ready web
wait_ready extra
start_mux mux "$T/mux.ini"
metrics "$PA" "$T/m0.prom"
assert_eq 1 "$(mval "$T/m0.prom" "$UP_WEB")" "web up at start"
assert_eq 1 "$(mval "$T/m0.prom" "$UP_EXTRA")" "extra up at start"
# One connection through extra, so that it has a counter to keep.
stun='\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl'
client 127.0.0.1 "$PM" --data "$stun" --shut-wr --hex >"$T/stun.out" 2>"$T/stun.err"
assert_contains "$(cat "$T/stun.out")" "000100002112a442" "STUN echoed through extra"
wait_metric "$PA" "$CONNECTS_EXTRA" -eq 1 5

log "1. a rejected reload registers nothing"
conf yes "[backend gone]\nserver = 127.0.0.1:$PG\n\n[route gone]\nhost = gone.test\nbackend = gone\n\n[backend broken"
kill -HUP "$(pid_of mux)"
wait_log mux 'reload: .* is invalid: the running configuration stays in force' 5
wait_metric "$PA" 'mux443_reloads_total{result="failed"}' -eq 1 5
metrics "$PA" "$T/m1.prom"
assert_not_grep 'backend="gone"' "$T/m1.prom" "series of a backend only a rejected file had"
assert_not_grep 'route="gone"' "$T/m1.prom" "series of a route only a rejected file had"
assert_eq 1 "$(mval "$T/m1.prom" "$UP_EXTRA")" "extra still up after the rejected reload"

log "2. a reload that removes a backend"
conf no
kill -HUP "$(pid_of mux)"
wait_log mux 'reload: .*mux\.ini loaded' 5
deadline=$((SECONDS + 10))
while :; do
    metrics "$PA" "$T/m2.prom"
    [[ $(mval "$T/m2.prom" "$UP_EXTRA") == absent ]] && break
    ((SECONDS < deadline)) || fail "$UP_EXTRA still reported 10 s after the reload that removed it"
    sleep 0.1
done
assert_eq 1 "$(mval "$T/m2.prom" "$UP_WEB")" "web still up after extra was removed"
assert_eq 1 "$(mval "$T/m2.prom" "$CONNECTS_EXTRA")" "extra's counter kept (monotonic)"
assert_contains "$(http_body "$PM" /after)" "web:web method=GET path=/after" "web still served"
stop_mux mux
