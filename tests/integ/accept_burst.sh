#!/usr/bin/env bash
# A burst of connections pending at once on the listener is accepted whole: the accept
# batch starts at one per wakeup and grows while the listener stays ready (workers.c),
# so every client of the burst is served, none waits for another to end; after the
# burst, one client at a time is still served.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PE=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1
[backend echo]
server = 127.0.0.1:$PE
[route]
http = echo
INI
wait_ready echo
start_mux mux "$T/mux.ini"

# burst N: with mux443 stopped (SIGSTOP), N clients connect and send a request, so all
# are pending on the listener at once; then mux443 goes on (SIGCONT) and each client
# must get its own echo back while all are still open.
burst() {
    "$PY" - "$PM" "$1" "$(pid_of mux)" <<'PYEOF'
import os, signal, socket, sys
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
os.kill(pid, signal.SIGSTOP)
try:
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(f"GET /{i} HTTP/1.0\r\nHost: burst.test\r\n\r\n".encode())
finally:
    os.kill(pid, signal.SIGCONT)
for i, s in enumerate(socks):
    want = f"GET /{i} HTTP/1.0\r\nHost: burst.test\r\n\r\n".encode()
    got = b""
    while len(got) < len(want):
        d = s.recv(4096)
        if not d:
            break
        got += d
    if got != want:
        sys.exit(f"client {i}: got {got[:80]!r}")
for s in socks:
    s.close()
print(f"{n} served")
PYEOF
}

log "1. 200 clients pending at once"
assert_eq "200 served" "$(burst 200)" "every client of the burst echoed"
log "2. then one at a time"
for i in 1 2 3; do
    assert_eq "1 served" "$(burst 1)" "single client $i echoed"
done
stop_mux mux
