#!/usr/bin/env bash
# TCP Fast Open toward backends (tcp_fastopen = yes): once the kernel holds a cookie for
# the server, the client's first flight rides on the SYN (the kernel's TCPFastOpenActive
# counter says so, and the server's TCPFastOpenPassive); the bytes arrive whole; a server
# that refuses a SYN carrying data (nothing listens there, but the cookie is the host's)
# is still failed over, with the next server getting the preread whole; a silent
# client's route (nothing to put in a SYN) connects as usual; a backend without the
# key never uses TFO; and a connection with the cookie costs one sendto(MSG_FASTOPEN),
# not a connect and a write.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

# Client and server TFO in this case's own network namespace (the setting is per
# namespace; the machine's own is left alone).
if [[ -z ${MUX443_IN_NETNS:-} ]] || ! sysctl -qw net.ipv4.tcp_fastopen=3 2>/dev/null; then
    log "SKIP: no network namespace of our own to enable TCP Fast Open in"
    exit 77
fi
command -v nstat >/dev/null || { log "SKIP: nstat (iproute2) is not installed"; exit 77; }
counter() { nstat -az "$1" | awk -v k="$1" '$1 == k {print $2}'; }

PM=$(free_port)
PE=$(free_port)
PB=$(free_port)
DEAD=$(free_port) # nothing listens here: connects are refused
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE" --fastopen
start_bg banner "$PY" "$PEERS/tcp_echo.py" banner "$PB" --fastopen --banner
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1
peek_timeout = 200ms

[backend tfo]
server = 127.0.0.1:$DEAD, 127.0.0.1:$PE
tcp_fastopen = yes

[backend plain]
server = 127.0.0.1:$PE

[backend silent]
server = 127.0.0.1:$PB
tcp_fastopen = yes

[route plain]
host = plain.test
backend = plain

[route]
http = tfo
on_timeout = silent
INI
wait_ready echo
wait_ready banner
start_mux mux "$T/mux.ini"

# exchange HOST: one request through mux443, asserts the echo.
exchange() {
    local req="GET /$1 HTTP/1.0\r\nHost: $1\r\n\r\n"
    client 127.0.0.1 "$PM" --data "$req" --shut-wr >"$T/$1.out" 2>"$T/$1.err"
    # shellcheck disable=SC2059 # the format holds the escapes
    assert_eq "$(printf "$req")" "$(cat "$T/$1.out")" "echo of the request for $1"
}

log "1. no cookie yet: an ordinary connect (that asks for one), after the refused server"
a0=$(counter TcpExtTCPFastOpenActive)
exchange one.test
wait_log mux "backend tfo server 127.0.0.1:$DEAD: Connection refused; trying 127.0.0.1:$PE"
assert_eq "$a0" "$(counter TcpExtTCPFastOpenActive)" "no data in a SYN without a cookie"

log "2. with the cookie: the first flight rides on the SYN"
p0=$(counter TcpExtTCPFastOpenPassive)
exchange two.test # round robin: the live server first this time
assert_eq "$((a0 + 1))" "$(counter TcpExtTCPFastOpenActive)" "SYN data acknowledged (client side)"
assert_eq "$((p0 + 1))" "$(counter TcpExtTCPFastOpenPassive)" "SYN data accepted (server side)"

log "3. SYN data refused by the dead server: failed over, the preread whole"
exchange three.test
assert_eq 2 "$(grep -c "backend tfo server 127.0.0.1:$DEAD: Connection refused; trying" "$T/mux.log")" \
    "second refusal logged"

log "4. a silent client (on_timeout) to a server that speaks first: an ordinary connect"
# (a deferred TFO connect would send its SYN only with a first write, which neither side
# would make)
client 127.0.0.1 "$PM" --timeout 2 >"$T/quiet.out" 2>"$T/quiet.err" || true
assert_eq "tcp:banner" "$(cat "$T/quiet.out")" "the server's banner reached the silent client"

log "5. a backend without tcp_fastopen: no TFO"
a1=$(counter TcpExtTCPFastOpenActive)
exchange plain.test
assert_eq "$a1" "$(counter TcpExtTCPFastOpenActive)" "no TFO without the key"

log "6. one system call connects and sends: sendto(MSG_FASTOPEN), no connect(2)"
if ! command -v strace >/dev/null; then
    fail "strace is not installed (packaging/install-deps.sh test installs it)"
fi
start_bg strace strace -f -e trace=connect,sendto -o "$T/strace.txt" -p "$(pid_of mux)"
wait_log strace 'attached' 15 # tracing from here on
a2=$(counter TcpExtTCPFastOpenActive)
exchange six.test # round robin: the live server first
stop strace
assert_eq "$((a2 + 1))" "$(counter TcpExtTCPFastOpenActive)" "the flight rode on the SYN"
assert_eq 1 "$(grep -c 'sendto(.*MSG_FASTOPEN' "$T/strace.txt")" "one sendto(MSG_FASTOPEN)"
assert_eq 0 "$(grep -c 'connect(' "$T/strace.txt")" "no connect(2)"

stop_mux mux
