#!/usr/bin/env bash
# Per-client limits group IPv6 clients by /64 (client_prefix_v6, default): with
# max_connections_per_client = 3, three connections held from 2001:db8::2, ::3 and ::4
# (one /64) use up that client's share: a 4th from 2001:db8::5 is refused and the log
# names the prefix (2001:db8::/64), while 2001:db8:0:1::5 (another /64) and 127.0.0.1
# are served. With client_prefix_v6 = 128 the same four addresses are four clients.
# The addresses are added to `lo` inside the test's own network namespace.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

[[ -n ${MUX443_IN_NETNS:-} ]] || { log "SKIP: needs a network namespace of its own"; exit 77; }
for a in 2001:db8::1 2001:db8::2 2001:db8::3 2001:db8::4 2001:db8::5 2001:db8:0:1::5; do
    ip -6 addr add "$a/64" dev lo nodad || fail "cannot add $a to lo"
done
PM=$(free_port)
PA=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
wait_ready echo

hold() { # NAME BIND
    start_bg "$1" "$PY" "$PEERS/client.py" 2001:db8::1 "$PM" --bind "$2" --data '\xffhold\n' --hold
    wait_ready "$1"
}
refused() { # NAME BIND
    client 2001:db8::1 "$PM" --bind "$2" --data '\xffrefuse-me\n' --timeout 5 >"$T/$1.out" 2>"$T/$1.err" || true
    [[ ! -s $T/$1.out ]] || fail "$1 from $2: a refused connection was relayed"
}
served() { # NAME HOST BIND
    client "$2" "$PM" --bind "$3" --data '\xffserve-me\n' --shut-wr --timeout 5 >"$T/$1.out" 2>"$T/$1.err" || true
    grep -q 'serve-me' "$T/$1.out" || fail "$1 from $3: not served: $(cat "$T/$1.err")"
}
conf() { # PREFIX_LINE
    cat >"$T/mux.ini" <<INI
[mux443]
listen = [2001:db8::1]:$PM, 127.0.0.1:$PM
admin = 127.0.0.1:$PA
workers = 2
max_connections_per_client = 3
$1

[backend echo]
server = 127.0.0.1:$PE

[route]
default = echo
INI
}

log "default client_prefix_v6 (64): four addresses of 2001:db8::/64 are one client"
conf ""
start_mux mux "$T/mux.ini"
hold h2 2001:db8::2
hold h3 2001:db8::3
hold h4 2001:db8::4
refused r5 2001:db8::5
wait_metric "$PA" 'mux443_refused_total{limit="per_client"}' -eq 1 5
assert_grep 'client 2001:db8::/64: max_connections_per_client \(3\) reached' "$T/mux.log" \
    "the refusal names the prefix"
served other64 2001:db8::1 2001:db8:0:1::5
served v4 127.0.0.1 127.0.0.1
for h in h2 h3 h4; do stop "$h"; done
stop_mux mux

log "client_prefix_v6 = 128: each address is a client"
conf "client_prefix_v6 = 128"
start_mux mux2 "$T/mux.ini"
hold k2 2001:db8::2
hold k3 2001:db8::3
hold k4 2001:db8::4
served s5 2001:db8::1 2001:db8::5
assert_not_grep 'max_connections_per_client \(3\) reached' "$T/mux2.log"
for h in k2 k3 k4; do stop "$h"; done
stop_mux mux2
