#!/usr/bin/env bash
# Half-close, both ways:
#  1. the client sends a request + 1 MB, then SHUT_WR; the echo backend sees EOF, echoes
#     everything, closes; the client gets the full echo, then EOF.
#  2. the client sends 1 MB then SHUT_WR; a backend that answers only after EOF (a
#     hash of all it got) still gets to answer: the reply direction stays open.
#  3. the backend shuts its write side first (after echoing the first chunk) while the
#     client keeps sending: the client sees EOF, the 256 KB it sends afterwards still
#     reach the backend.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

PM=$(free_port)
PE=$(free_port)
PH=$(free_port)
PF=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg hash "$PY" "$PEERS/tcp_echo.py" hash "$PH" --mode hash
start_bg hcf "$PY" "$PEERS/tcp_echo.py" hcf "$PF" --mode halfclose-first
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[backend echo]
server = 127.0.0.1:$PE

[backend hash]
server = 127.0.0.1:$PH

[backend hcf]
server = 127.0.0.1:$PF

[route hash]
host = hash.test
backend = hash

[route hcf]
host = hcf.test
backend = hcf

[route]
http = echo
INI
for p in echo hash hcf; do wait_ready "$p"; done
start_mux mux "$T/mux.ini"

head -c 1048576 /dev/urandom >"$T/blob"
{ printf 'POST /up HTTP/1.1\r\nHost: echo.test\r\n\r\n'; cat "$T/blob"; } >"$T/req-echo"
{ printf 'POST /up HTTP/1.1\r\nHost: hash.test\r\n\r\n'; cat "$T/blob"; } >"$T/req-hash"

log "1. client SHUT_WR, echo backend replies and closes"
client 127.0.0.1 "$PM" --file "$T/req-echo" --shut-wr --timeout 20 >"$T/echo.out" 2>"$T/echo.err"
assert_grep 'end=eof' "$T/echo.err" "client saw EOF after the echo"
assert_eq "$(sha256sum <"$T/req-echo" | cut -d' ' -f1)" "$(sha256sum <"$T/echo.out" | cut -d' ' -f1)" \
    "echo of request + 1 MB"
assert_grep "tcp:echo eof in=$(stat -c %s "$T/req-echo") " "$T/echo.log" "echo backend saw EOF after all bytes"

log "2. client SHUT_WR, backend answers only after EOF"
out=$(client 127.0.0.1 "$PM" --file "$T/req-hash" --shut-wr --timeout 20 2>"$T/hash.err")
want="bytes=$(stat -c %s "$T/req-hash") sha256=$(sha256sum <"$T/req-hash" | cut -d' ' -f1)"
assert_eq "$want" "$out" "answer sent after the client's EOF"
assert_grep 'end=eof' "$T/hash.err"

log "3. backend SHUT_WR first, client keeps sending"
"$PY" - "$PM" >"$T/rev.out" 2>&1 <<'PYEOF' || fail "reverse half-close client: $(cat "$T/rev.out")"
import select, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = b"PUT /rev HTTP/1.1\r\nHost: hcf.test\r\n\r\n"
s.sendall(req)
got = b""
while True:  # the echo of the first chunk, then EOF: the backend shut its write side
    d = s.recv(65536)
    if not d:
        break
    got += d
assert got == req, f"before EOF got {got!r}"
more = b"m" * 262144
s.sendall(more)  # the connection must still carry client -> backend bytes
s.shutdown(socket.SHUT_WR)
r, _, _ = select.select([s], [], [], 10)
assert r and s.recv(1) == b"", "no close after both sides shut down"
print(f"ok sent_after={len(more)} first={len(req)}")
PYEOF
assert_grep '^ok ' "$T/rev.out"
wait_log hcf 'eof after-shutdown in=' 10
first=$(sed -n 's/.*shut_wr after in=\([0-9]*\).*/\1/p' "$T/hcf.log")
after=$(sed -n 's/.*eof after-shutdown in=\([0-9]*\).*/\1/p' "$T/hcf.log")
assert_eq $((37 + 262144)) $((first + after)) "bytes the backend got, before + after its SHUT_WR"

wait_count mux 'conn=[0-9]+ .*reason=' 3
assert_not_grep 'reason="[^"]*(error|reset|timeout)' "$T/mux.log" "a half-close ended in an error"
stop_mux mux
