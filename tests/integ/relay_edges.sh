#!/usr/bin/env bash
# The relay on edge-triggered events (src/core/conn.c): each socket is registered once,
# a read that emptied it or an EAGAIN is the only thing that says "not ready", and a
# FIN that came in before the event ends the stream without the read that would say so.
#  1. FIN right behind the data, both ways, plain: the client sends N bytes and SHUT_WR in
#     one go, the echo backend echoes them and ends its side the same way; for N around
#     the relay's 64 KiB read (short, exact, over) and past the splice threshold, every
#     byte and then the end of stream arrive, at both ends.
#  2. The same with TLS terminated by mux443 (the client's end: a FIN after its records).
#  3. A leg made ready while it was not wanted: the backend reads nothing until the client
#     is blocked (every buffer on the way full, so mux443 stopped reading the client while
#     more of its bytes arrived), then reads everything: the upload must go on to the end
#     although no new event announces the bytes already waiting.
#  4. System calls: each connection's two sockets are registered once (2 epoll_ctl per
#     connection; level-triggered libev took 3), counted with strace.
#  5. splice(2) for bulk only: 6,000 round trips of 64 bytes on one connection (past the
#     splice threshold in bytes) never splice, a 2 MB upload does.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test
PM=$(free_port)
PE=$(free_port)
PG=$(free_port)

# The gated backend of case 3: reads nothing until SIGUSR1, then everything up to EOF,
# answers with the count and hash, closes.
cat >"$T/gated.py" <<'PYEOF'
import hashlib, signal, socket, sys, threading
go = threading.Event()
signal.signal(signal.SIGUSR1, lambda *_: go.set())
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(8)
print("ready", flush=True)
c, _ = ls.accept()
print("accepted", flush=True)
go.wait()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 20)
    if not d:
        break
    h.update(d)
    n += len(d)
c.sendall(f"bytes={n} sha256={h.hexdigest()}\n".encode())
c.close()
print(f"done bytes={n}", flush=True)
PYEOF

start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg gated "$PY" "$T/gated.py" "$PG"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 1

[tls]
cert = $P/site.crt
key = $P/site.key

[backend echo]
server = 127.0.0.1:$PE

[backend gated]
server = 127.0.0.1:$PG

[route gated]
host = gated.test
backend = gated

[route]
http = echo
INI
wait_ready echo
wait_ready gated
start_mux mux "$T/mux.ini"

SIZES=(1 1000 65535 65536 65537 131072 300000)

# echo_client.py PORT plain|tls CA SIZE...: one connection per size, the request and its
# end in one go; checks the echo, then the end of stream.
cat >"$T/echo_client.py" <<'PYEOF'
import hashlib, os, socket, ssl, sys
port, tls, ca = int(sys.argv[1]), sys.argv[2] == "tls", sys.argv[3]


def tls_exchange(s, data):
    """TLS through memory BIOs: the request, close_notify and the FIN leave together,
    and nothing the server sends meanwhile can reach OpenSSL's shutdown (which would
    take an early echo for an error)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context(cafile=ca).wrap_bio(inc, out, server_hostname="site.test")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            d = s.recv(1 << 16)
            if not d:
                raise SystemExit("closed during the handshake")
            inc.write(d)
    s.sendall(out.read())
    obj.write(data)
    try:
        obj.unwrap()  # close_notify into `out`; its wait for the server's answers WantRead
    except ssl.SSLWantReadError:
        pass
    s.sendall(out.read())
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while True:
        try:
            got += obj.read(1 << 20)
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:  # the server's close_notify
            return got
        d = s.recv(1 << 20)
        if not d:
            raise SystemExit(f"FIN without close_notify after {len(got)} bytes")
        inc.write(d)


for size in map(int, sys.argv[4:]):
    head = b"POST /e HTTP/1.1\r\nHost: echo.test\r\n\r\n"
    data = head + os.urandom(max(size - len(head), 0))
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    if tls:
        got = tls_exchange(s, data)
    else:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # the FIN right behind the last byte
        got = bytearray()
        while d := s.recv(1 << 20):
            got += d
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        print(f"size={size} sent {len(data)} got {len(got)} (differs)")
        sys.exit(1)
    s.close()
    print(f"ok size={len(data)}")
PYEOF

log "1. FIN right behind data, both ways, plain"
for round in 1 2 3; do
    "$PY" "$T/echo_client.py" "$PM" plain - "${SIZES[@]}" >"$T/plain$round.out" 2>&1 ||
        fail "plain round $round: $(cat "$T/plain$round.out")"
done
assert_eq 21 "$(grep -c '^ok ' "$T"/plain*.out | awk -F: '{s += $2} END {print s}')" \
    "plain exchanges complete"

log "2. the same, TLS terminated"
"$PY" "$T/echo_client.py" "$PM" tls "$P/ca.crt" "${SIZES[@]}" >"$T/tls.out" 2>&1 ||
    fail "TLS: $(cat "$T/tls.out")"
assert_eq 7 "$(grep -c '^ok ' "$T/tls.out")" "TLS exchanges complete"
wait_count mux 'conn=[0-9]+ .*reason="done"' 28

log "3. a client leg ready while unwanted is read once its peer drains"
BIG=$((32 * 1024 * 1024))
cat >"$T/upload.py" <<'PYEOF'
import hashlib, os, select, socket, sys
port, total, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
data = b"PUT /u HTTP/1.1\r\nHost: gated.test\r\n\r\n" + os.urandom(total)
s.setblocking(False)
off = 0
while off < len(data):  # until the first EAGAIN: nothing on the way reads any more
    try:
        off += s.send(data[off:off + 65536])
    except BlockingIOError:
        break
print(f"blocked sent={off}", flush=True)
if off == len(data):
    sys.exit("everything fitted in the buffers: the case needs more bytes")
while not os.path.exists(flag):
    select.select([], [], [], 0.05)  # the script creates the flag once the backend reads
s.setblocking(True)
s.sendall(data[off:])
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    reply += d
want = f"bytes={len(data)} sha256={hashlib.sha256(data).hexdigest()}\n".encode()
print("ok" if reply == want else f"reply {reply!r}, want {want!r}", flush=True)
PYEOF
start_bg upload "$PY" "$T/upload.py" "$PM" "$BIG" "$T/released"
wait_log gated 'accepted' 15
wait_log upload 'blocked sent=' 30
kill -USR1 "$(pid_of gated)"
touch "$T/released"
wait_log gated 'done bytes=' 60
wait_log upload '^(ok|reply)' 30
assert_grep '^ok$' "$T/upload.log" "the whole upload reached the backend"
wait_count mux 'conn=[0-9]+ .*reason="done"' 29

command -v strace >/dev/null ||
    fail "strace is not installed (packaging/install-deps.sh test installs it)"
# calls FILE NAME: how many NAME calls strace -c counted
calls() { awk -v n="$2" '$NF == n && $1 ~ /^[0-9.]+$/ { print $4 }' "$1"; }

log "4. each socket registered once"
start_bg strace strace -c -f -o "$T/strace.txt" -p "$(pid_of mux)"
wait_log strace 'attached' 15 # tracing from here on
N=20
for _ in $(seq $N); do
    "$PY" "$T/echo_client.py" "$PM" plain - 1000 >>"$T/count.out" 2>&1
done
wait_count mux 'conn=[0-9]+ .*reason="done"' $((29 + N))
stop strace # SIGTERM: detaches and writes the counts
ctl=$(calls "$T/strace.txt" epoll_ctl)
log "epoll_ctl: ${ctl:-0} for $N connections"
((${ctl:-0} <= 2 * N)) || fail "epoll_ctl ${ctl} for $N connections (at most $((2 * N)))"

log "5. splice for bulk, not for small packets"
cat >"$T/pingpong.py" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
head = b"POST /p HTTP/1.1\r\nHost: echo.test\r\n\r\n"
s.sendall(head)
got = b""
while len(got) < len(head):
    got += s.recv(4096)
for i in range(6000):
    msg = i.to_bytes(4, "big") * 16
    s.sendall(msg)
    got = b""
    while len(got) < 64:
        d = s.recv(64 - len(got))
        if not d:
            sys.exit(f"closed at round trip {i}")
        got += d
    if got != msg:
        sys.exit(f"round trip {i}: wrong echo")
s.close()
print("ok")
PYEOF
start_bg strace6 strace -c -f -e trace=splice -o "$T/splice-small.txt" -p "$(pid_of mux)"
wait_log strace6 'attached' 15
"$PY" "$T/pingpong.py" "$PM" >"$T/pingpong.out" 2>&1 || fail "ping-pong: $(cat "$T/pingpong.out")"
wait_count mux 'conn=[0-9]+ .*reason="done"' $((30 + N))
stop strace6
assert_eq "" "$(calls "$T/splice-small.txt" splice)" "no splice for 384 KB of 64-byte round trips"
start_bg strace7 strace -c -f -e trace=splice -o "$T/splice-bulk.txt" -p "$(pid_of mux)"
wait_log strace7 'attached' 15
"$PY" "$T/echo_client.py" "$PM" plain - 2000000 >"$T/bulk.out" 2>&1 || fail "bulk: $(cat "$T/bulk.out")"
wait_count mux 'conn=[0-9]+ .*reason="done"' $((31 + N))
stop strace7
spliced=$(calls "$T/splice-bulk.txt" splice)
log "splice calls for a 2 MB upload and its echo: ${spliced:-0}"
((${spliced:-0} > 0)) || fail "a 2 MB upload was not spliced"
stop_mux mux
