#!/usr/bin/env bash
# Admission limits.
#  1. max_connections_per_client = 3: with three connections from 127.0.0.2 held open,
#     its 4th..10th concurrent connections are closed unanswered, the log has exactly one
#     line about it (logged once per 10 s per address), 127.0.0.3 is still served,
#     mux443_refused_total{limit="per_client"} = 7; once the three close, 127.0.0.2 is
#     served again (its count went back down).
#  2. [listener side] max_connections = 2 and global max_connections = 4: a 3rd
#     connection on `side` is refused (listener_max) while the main listener serves; with
#     2 + 2 open, a 5th on the main listener is refused (max_connections); closing one
#     admits a new one again.
#  3. [listener side] max_connections = 2 across SIGHUP: with 2 connections held, a
#     reload (which also moves the default route, to see the new snapshot serving) still
#     refuses a 3rd and a 4th on `side`; a held connection accepted under the old
#     snapshot gives its place back when it closes. Regression: the count lived in the
#     listener's configuration, so each reload started it again at 0 and let 2 more in.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PS=$(free_port)
PA=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo

# refused_client NAME PORT [BIND]: a connection that must be closed without an echo.
refused_client() {
    client 127.0.0.1 "$2" ${3:+--bind "$3"} --data '\xffrefuse-me\n' --timeout 5 \
        >"$T/$1.out" 2>"$T/$1.err" || true
    grep -Eq 'end=(eof|reset|closed-while-sending)' "$T/$1.err" ||
        fail "$1: expected mux443 to close the connection, got: $(cat "$T/$1.err")"
    [[ ! -s $T/$1.out ]] || fail "$1: a refused connection was relayed: $(cat "$T/$1.out")"
}

# served_client NAME PORT [BIND]: a connection that must be relayed to the echo backend.
served_client() {
    client 127.0.0.1 "$2" ${3:+--bind "$3"} --data '\xffserve-me\n' --shut-wr --timeout 5 \
        >"$T/$1.out" 2>"$T/$1.err" || true
    grep -q 'serve-me' "$T/$1.out" || fail "$1: not served: $(cat "$T/$1.err")"
}

hold() { # NAME PORT [BIND]
    start_bg "$1" "$PY" "$PEERS/client.py" 127.0.0.1 "$2" ${3:+--bind "$3"} \
        --data '\xffhold\n' --hold
    wait_ready "$1"
}

log "1. max_connections_per_client = 3"
cat >"$T/mux1.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA
max_connections_per_client = 3

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
start_mux mux1 "$T/mux1.ini"
for i in 1 2 3; do hold "h$i" "$PM" 127.0.0.2; done
pids=()
for i in 4 5 6 7 8 9 10; do
    refused_client "r$i" "$PM" 127.0.0.2 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a 4th..10th connection from 127.0.0.2 was served"; done
served_client other "$PM" 127.0.0.3
wait_metric "$PA" 'mux443_refused_total{limit="per_client"}' -ge 7 5
metrics "$PA" "$T/m1.prom"
assert_eq 7 "$(mval "$T/m1.prom" 'mux443_refused_total{limit="per_client"}')" "refused per_client"
assert_eq 0 "$(mval "$T/m1.prom" 'mux443_refused_total{limit="max_connections"}')" "refused max_connections"
n=$(count_log mux1 'client 127\.0\.0\.2[]:0-9]*.*max_connections_per_client')
assert_eq 1 "$n" "log lines about 127.0.0.2's refusals (once per 10 s)"
assert_not_grep 'client 127\.0\.0\.3.*max_connections_per_client' "$T/mux1.log"
# The held connections still relay.
for i in 1 2 3; do kill -USR1 "$(pid_of "h$i")"; done
for i in 1 2 3; do wait_log "h$i" 'hold: ping 1 (ok|FAILED)'; done
for i in 1 2 3; do assert_grep 'hold: ping 1 ok' "$T/h$i.log" "held connection $i"; done
# Closing them gives 127.0.0.2 its slots back.
for i in 1 2 3; do stop "h$i"; done
wait_count mux1 'conn=[0-9]+ client=127\.0\.0\.2:.*bytes_in=[1-9].*reason=' 3 10
served_client again "$PM" 127.0.0.2
stop_mux mux1

log "2. listener and global max_connections"
cat >"$T/mux2.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2
admin = 127.0.0.1:$PA
max_connections = 4

[listener side]
listen = 127.0.0.1:$PS
max_connections = 2

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
start_mux mux2 "$T/mux2.ini"
hold s1 "$PS"
hold s2 "$PS"
refused_client side3 "$PS"
wait_metric "$PA" 'mux443_refused_total{limit="listener_max"}' -eq 1 5
assert_grep 'listener side: max_connections \(2\) reached' "$T/mux2.log" "listener limit logged"
hold m1 "$PM"
hold m2 "$PM"
refused_client main5 "$PM"
refused_client side5 "$PS"
metrics "$PA" "$T/m2.prom"
assert_eq 2 "$(mval "$T/m2.prom" 'mux443_refused_total{limit="max_connections"}')" \
    "refused max_connections (main 5th, side 5th)"
assert_eq 1 "$(mval "$T/m2.prom" 'mux443_refused_total{limit="listener_max"}')" "refused listener_max"
assert_grep 'max_connections \(4\) reached' "$T/mux2.log" "global limit logged"
# One slot freed: a new connection is admitted on the main listener.
stop m2
wait_count mux2 'conn=[0-9]+ client=127\.0\.0\.1:.*listener=[^ ]+ .*bytes_in=[1-9].*reason=' 1 10
served_client main_again "$PM"
for n in s1 s2 m1; do kill -USR1 "$(pid_of $n)"; done
for n in s1 s2 m1; do wait_log "$n" 'hold: ping 1 (ok|FAILED)'; done
for n in s1 s2 m1; do assert_grep 'hold: ping 1 ok' "$T/$n.log" "held connection $n"; done
for n in s1 s2 m1; do stop "$n"; done
stop_mux mux2

log "3. a listener's max_connections = 2 holds across SIGHUP"
PE2=$(free_port)
start_bg echo2 "$PY" "$PEERS/tcp_echo.py" echo2 "$PE2" --hello
wait_ready echo2
conf3() { # DEFAULT_BACKEND; one worker, so that its new snapshot is the one serving
    cat >"$T/mux3.ini.new" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1
admin = 127.0.0.1:$PA

[listener side]
listen = 127.0.0.1:$PS
max_connections = 2

[backend echo]
server = 127.0.0.1:$PE

[backend echo2]
server = 127.0.0.1:$PE2

[route]
default = $1
INI
    mv "$T/mux3.ini.new" "$T/mux3.ini"
}
conf3 echo
start_mux mux3 "$T/mux3.ini"
hold k1 "$PS"
hold k2 "$PS"
refused_client before_reload "$PS"
conf3 echo2
kill -HUP "$(pid_of mux3)"
wait_log mux3 'reload: .*mux3\.ini loaded' 5
deadline=$((SECONDS + 10))
until client 127.0.0.1 "$PM" --data '\xffwho\n' --shut-wr --timeout 5 2>/dev/null | grep -q 'tcp:echo2'; do
    ((SECONDS < deadline)) || fail "the reloaded configuration never served a connection"
    sleep 0.05
done
refused_client after_reload3 "$PS"
refused_client after_reload4 "$PS"
metrics "$PA" "$T/m3.prom"
assert_eq 3 "$(mval "$T/m3.prom" 'mux443_refused_total{limit="listener_max"}')" \
    "refused listener_max (one before the reload, two after)"
stop k1
wait_count mux3 'conn=[0-9]+ client=127\.0\.0\.1:[0-9]+ listener=side .*reason=' 1 10
served_client side_again "$PS"
kill -USR1 "$(pid_of k2)"
wait_log k2 'hold: ping 1 (ok|FAILED)'
assert_grep 'hold: ping 1 ok' "$T/k2.log" "held connection k2 after the reload"
stop k2
stop_mux mux3
