#!/usr/bin/env bash
# The kernel relay (relay = kernel, README "Kernel relay"), with real peers:
#  1. request + 1 MB, the client sending its bytes right behind the first flight (they
#     arrive while the sockets enter the sockmap): the echo is byte-exact, the kernel
#     relayed the connection (metric), the close line counts every byte both ways;
#  2. ping-pong: 200 small messages, each sent at once after the previous answer;
#  3. half-close, client first: once the connection is in the kernel, the client sends
#     1 MB and SHUT_WR at once; a backend that answers only after EOF gets every byte
#     (its hash) and its answer comes back;
#  4. half-close, backend first: the backend sends 1 MB and shuts its write side; the
#     client gets all of it, then EOF, and the 256 KB it sends afterwards still reach the
#     backend;
#  5. TLS passthrough: the handshake and 200 TLS echoes cross the kernel relay (the
#     ClientHello is the preread; everything after it goes through the map);
#  6. the idle timeout counts the kernel's bytes: a connection whose bytes only the
#     kernel moves outlives its 1 s idle_timeout while it is busy, and is closed once idle;
#  7. back-pressure: a client floods a backend that never reads: the connection is closed
#     for its kernel backlog (metric, close line) while a ping-pong connection on the same
#     route keeps working;
#  8. fallback: mux443 started without CAP_BPF/CAP_NET_ADMIN/CAP_SYS_ADMIN says once that
#     the kernel relay is unavailable and relays the same routes in user space;
#  9. least privilege: with user = nobody (no capability left, effective or permitted, but
#     those for reloads), connections still enter the map: the program and maps were made
#     at start, and updates through their descriptors need no capability;
#  10. the budget of all connections: with a per-connection cap no connection reaches, a
#     connection holding more than kernel_relay_budget is closed for it.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"

PM=$(free_port)
PA=$(free_port)
PE=$(free_port)
PH=$(free_port)
PF=$(free_port)
PS=$(free_port)
start_bg echo "$PY" "$PEERS/tcp_echo.py" echo "$PE"
start_bg hash "$PY" "$PEERS/tcp_echo.py" hash "$PH" --mode hash
# A backend that accepts and never reads.
start_bg sink "$PY" -c '
import socket, sys, time
ls = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready sink", flush=True)
held = []
while True:
    c, _ = ls.accept()
    held.append(c)
    print("sink accepted", flush=True)
' "$PS"
# Echoes; on a chunk holding SHUTWR, sends 1 MB of a known pattern behind the echo, shuts
# its write side, and counts what still arrives.
start_bg hcf "$PY" -c '
import socket, sys, threading
ls = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready hcf", flush=True)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            print("hcf eof before SHUTWR", flush=True)
            return
        c.sendall(d)
        if b"SHUTWR" in d:
            break
    c.sendall(bytes(range(256)) * 4096)
    c.shutdown(socket.SHUT_WR)
    after = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        after += len(d)
    print(f"hcf eof after-shutdown in={after}", flush=True)
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$PF"
# A TLS echo server: TLS passthrough through the kernel relay (the handshake crosses it).
PT=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=tls.test" -keyout "$T/tls.key" -out "$T/tls.crt" 2>/dev/null
start_bg tlsecho "$PY" -c '
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ls = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready tlsecho", flush=True)
def serve(c):
    with ctx.wrap_socket(c, server_side=True) as t:
        while True:
            d = t.recv(65536)
            if not d:
                break
            t.sendall(d)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
' "$PT" "$T/tls.crt" "$T/tls.key"
mux_conf() { # FILE: a relay = kernel route per backend
    cat >"$1" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = 127.0.0.1:$PA
workers = 2
kernel_relay_backlog = 2m


[backend echo]
server = 127.0.0.1:$PE

[backend hash]
server = 127.0.0.1:$PH

[backend hcf]
server = 127.0.0.1:$PF

[backend sink]
server = 127.0.0.1:$PS

[backend tlsecho]
server = 127.0.0.1:$PT

[route tls]
class = tls
sni = tls.test
backend = tlsecho
relay = kernel

[route hash]
host = hash.test
backend = hash
relay = kernel

[route hcf]
host = hcf.test
backend = hcf
relay = kernel

[route sink]
host = sink.test
backend = sink
relay = kernel

[route idle]
host = idle.test
backend = echo
relay = kernel
idle_timeout = 1s

[route echo]
class = http
backend = echo
relay = kernel
INI
}
mux_conf "$T/mux.ini"
for p in echo hash hcf sink tlsecho; do wait_ready "$p"; done
start_mux mux "$T/mux.ini"
assert_grep 'kernel relay ready' "$T/mux.log" "the program loaded"

head -c 1048576 /dev/urandom >"$T/blob"
{ printf 'POST /up HTTP/1.1\r\nHost: echo.test\r\n\r\n'; cat "$T/blob"; } >"$T/req-echo"
{ printf 'POST /up HTTP/1.1\r\nHost: hash.test\r\n\r\n'; cat "$T/blob"; } >"$T/req-hash"
size=$(stat -c %s "$T/req-echo")

# The first flight and 64 KB behind it in one send (they land while the sockets enter
# the map: neither lost nor reordered), their echo, then the rest of 1 MB streamed while
# the echo is read, SHUT_WR, the echo to EOF.
echo_case() { # MUX-NAME
    "$PY" - "$PM" "$T/req-echo" "$T/echo.out" <<'PYEOF' || fail "echo client failed"
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
data = open(sys.argv[2], "rb").read()
first = data.index(b"\r\n\r\n") + 4 + 65536
got = bytearray()
def reader():
    while True:
        d = s.recv(65536)
        if not d:
            return
        got.extend(d)
s.sendall(data[:first])
while len(got) < first:
    d = s.recv(65536)
    assert d, "EOF early"
    got.extend(d)
t = threading.Thread(target=reader)
t.start()
for off in range(first, len(data), 65536):
    s.sendall(data[off:off + 65536])
s.shutdown(socket.SHUT_WR)
t.join()
open(sys.argv[3], "wb").write(got)
PYEOF
    assert_eq "$(sha256sum <"$T/req-echo" | cut -d' ' -f1)" "$(sha256sum <"$T/echo.out" | cut -d' ' -f1)" \
        "echo of request + 1 MB"
    wait_close "$1" 'route=echo'
    assert_grep "route=echo .*bytes_in=$size bytes_out=$size " "$T/$1.log" \
        "the close line counts every byte both ways"
}

# 200 messages of 64 bytes, each sent as soon as the previous came back.
pingpong() { # PORT
    "$PY" - "$1" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /pp HTTP/1.1\r\nHost: echo.test\r\n\r\n")
want = b"POST /pp HTTP/1.1\r\nHost: echo.test\r\n\r\n"
got = b""
while len(got) < len(want):
    got += s.recv(65536)
assert got == want, got
for i in range(200):
    msg = (b"%04d" % i) * 16
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(65536)
        assert d, f"EOF at message {i}"
        got += d
    assert got == msg, (i, got)
s.shutdown(socket.SHUT_WR)
assert s.recv(10) == b""
print("pingpong ok")
PYEOF
}

log "1. bytes right behind the first flight, byte-exact both ways, kernel-relayed"
echo_case mux
wait_metric "$PA" 'mux443_kernel_relay_total{result="kernel"}' -ge 1
metrics "$PA" "$T/m1.prom"
assert_eq 0 "$(mval "$T/m1.prom" 'mux443_kernel_relay_total{result="fallback"}')" "no fallback"

log "2. ping-pong"
assert_eq "pingpong ok" "$(pingpong "$PM")" "200 exchanges"

# kernel_count N: waits until N connections were handed to the kernel (the sockets are in
# the map: what follows crosses the kernel relay).
kernel_count() { wait_metric "$PA" 'mux443_kernel_relay_total{result="kernel"}' -ge "$1"; }

log "3. client SHUT_WR with 1 MB in flight, backend answers only after EOF"
cat >"$T/hc.py" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
data = open(sys.argv[2], "rb").read()
s.sendall(data[:100])
print("sent", flush=True)
sys.stdin.readline()  # the test saw the connection enter the kernel
s.sendall(data[100:])
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.decode().strip(), flush=True)
PYEOF
coproc HC { "$PY" -u "$T/hc.py" "$PM" "$T/req-hash"; }
read -r _ <&"${HC[0]}"
kernel_count 3
echo go >&"${HC[1]}"
read -r out <&"${HC[0]}"
want="bytes=$(stat -c %s "$T/req-hash") sha256=$(sha256sum <"$T/req-hash" | cut -d' ' -f1)"
assert_eq "$want" "$out" "every byte reached the backend before its EOF, and the answer came back"
wait_close mux 'route=hash'
assert_grep "route=hash .*bytes_in=$(stat -c %s "$T/req-hash") bytes_out=$((${#want} + 1)) " "$T/mux.log" \
    "close line of the client-first half-close"

log "4. backend SHUT_WR first with 1 MB in flight, client keeps sending"
cat >"$T/rc.py" <<'PYEOF'
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
req = b"PUT /rev HTTP/1.1\r\nHost: hcf.test\r\n\r\n"
s.sendall(req)
got = b""
while len(got) < len(req):
    got += s.recv(65536)
print("echoed", flush=True)
sys.stdin.readline()
s.sendall(b"SHUTWR")
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
assert got == b"SHUTWR" + bytes(range(256)) * 4096, f"before EOF got {len(got)} bytes"
s.sendall(b"m" * 262144)
s.shutdown(socket.SHUT_WR)
assert s.recv(1) == b""
print("reverse ok", flush=True)
PYEOF
coproc RC { "$PY" -u "$T/rc.py" "$PM"; }
read -r _ <&"${RC[0]}"
kernel_count 4
echo go >&"${RC[1]}"
read -r out <&"${RC[0]}" || true
assert_eq "reverse ok" "$out" "the client saw 1 MB then EOF, and could still send"
wait_log hcf 'eof after-shutdown in=262144' 10
wait_close mux 'route=hcf'
assert_grep "route=hcf .*bytes_in=$((262144 + 37 + 6)) bytes_out=$((37 + 6 + 1048576)) " "$T/mux.log" \
    "close line of the backend-first half-close"
assert_eq 0 "$(count_log mux 'kernel relay refused')" "no connection fell back"

log "5. TLS passthrough through the kernel relay"
"$PY" - "$PM" >"$T/tls.out" 2>&1 <<'PYEOF' || fail "TLS client: $(cat "$T/tls.out")"
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="tls.test") as t:
        assert t.getpeercert(binary_form=True), "no certificate"
        for i in range(200):
            msg = (b"%04d" % i) * 16
            t.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += t.recv(65536)
            assert got == msg, (i, got)
print("tls ok")
PYEOF
assert_grep 'tls ok' "$T/tls.out"
wait_close mux 'route=tls'
kernel_count 5
metrics "$PA" "$T/m10.prom"
assert_eq 0 "$(mval "$T/m10.prom" 'mux443_kernel_relay_total{result="fallback"}')" "no fallback"

log "6. idle timeout: the kernel's bytes are activity"
cat >"$T/idle.py" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = b"GET /idle HTTP/1.1\r\nHost: idle.test\r\n\r\n"
s.sendall(req)
got = b""
while len(got) < len(req):
    got += s.recv(65536)
print("echoed", flush=True)
sys.stdin.readline()  # in the kernel now
for i in range(15):  # 3 s of ping-pong, one every 0.2 s: three idle timeouts long
    s.sendall(b"i" * 64)
    got = b""
    while len(got) < 64:
        d = s.recv(65536)
        assert d, f"closed while busy, at ping {i}"
        got += d
    time.sleep(0.2)
s.settimeout(10)
assert s.recv(1) == b"", "expected the idle connection to be closed"
print("idle ok", flush=True)
PYEOF
coproc IC { "$PY" -u "$T/idle.py" "$PM"; }
read -r _ <&"${IC[0]}"
kernel_count 6
echo go >&"${IC[1]}"
read -r out <&"${IC[0]}" || true
assert_eq "idle ok" "$out" "busy for three timeouts, then closed when idle"
wait_close mux 'route=idle'
assert_grep 'route=idle .*bytes_in=999 bytes_out=999 .*reason="idle timeout' "$T/mux.log" \
    "closed for the idle timeout, every byte counted"

log "7. a receiver that does not read: closed for its kernel backlog, others go on"
"$PY" - "$PM" >"$T/pp-long.out" 2>&1 <<'PYEOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
req = b"POST /pp HTTP/1.1\r\nHost: echo.test\r\n\r\n"
s.sendall(req)
got = b""
while len(got) < len(req):
    got += s.recv(65536)
n = 0
end = time.time() + 4  # spans the flood below
while time.time() < end:
    msg = b"x" * 64
    s.sendall(msg)
    got = b""
    while len(got) < 64:
        d = s.recv(65536)
        assert d, "EOF"
        got += d
    n += 1
    time.sleep(0.01)
print(f"pingpong ok n={n}")
PYEOF
pp=$!
cat >"$T/flood.py" <<'PYEOF'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"PUT /flood HTTP/1.1\r\nHost: sink.test\r\n\r\n")
print("sent", flush=True)
sys.stdin.readline()  # in the kernel now
sent = 0
chunk = b"f" * 65536
end = time.time() + 20
try:
    while time.time() < end:
        sent += s.send(chunk)
    print(f"flood not stopped sent={sent}", flush=True)
except OSError as e:
    print(f"flood ended sent={sent} {e.__class__.__name__}", flush=True)
PYEOF
coproc FC { "$PY" -u "$T/flood.py" "$PM"; }
read -r _ <&"${FC[0]}"
kernel_count 8
echo go >&"${FC[1]}"
read -r out <&"${FC[0]}" || true
echo "$out" >"$T/flood.out"
assert_grep 'flood ended' "$T/flood.out" "the flooding connection was closed"
wait_close mux 'route=sink'
assert_grep 'route=sink .*reason="kernel backlog' "$T/mux.log" "closed for its kernel backlog"
wait $pp || fail "ping-pong beside the flood: $(cat "$T/pp-long.out")"
assert_grep 'pingpong ok' "$T/pp-long.out"
metrics "$PA" "$T/m5.prom"
assert_eq 1 "$(mval "$T/m5.prom" 'mux443_kernel_relay_total{result="backlog_closed"}')" \
    "one connection closed for its backlog"
stop_mux mux

log "8. without CAP_BPF / CAP_NET_ADMIN: one line, relayed in user space"
start_bg muxnocap capsh --drop=cap_bpf,cap_net_admin,cap_sys_admin,cap_perfmon -- -c \
    "exec '$MUX443' -c '$T/mux.ini'"
wait_log muxnocap 'ready: listening on' 20
assert_eq 1 "$(count_log muxnocap 'kernel relay unavailable')" "one line says why"
echo_case muxnocap
assert_eq "pingpong ok" "$(pingpong "$PM")" "ping-pong in user space"
metrics "$PA" "$T/m6.prom"
assert_eq 0 "$(mval "$T/m6.prom" 'mux443_kernel_relay_total{result="kernel"}')" "nothing in the kernel"
assert_eq 1 "$(count_log muxnocap 'kernel relay')" "still one line after connections"
stop_mux muxnocap

log "9. user = nobody: no capability kept for the kernel relay"
sed -i 's/^workers = 2$/workers = 2\nuser = nobody/' "$T/mux.ini"
start_mux muxuser "$T/mux.ini"
assert_grep 'running as user nobody' "$T/muxuser.log"
assert_eq "pingpong ok" "$(pingpong "$PM")" "ping-pong after the switch to nobody"
metrics "$PA" "$T/m7.prom"
assert_eq 1 "$(mval "$T/m7.prom" 'mux443_kernel_relay_total{result="kernel"}')" "relayed by the kernel"
assert_not_grep 'CapEff:.*[1-9a-f]' "/proc/$(pid_of muxuser)/status" "no capability effective"
stop_mux muxuser

log "10. kernel_relay_budget: the largest backlog is closed when all together pass it"
sed -i -e '/^user = nobody$/d' -e 's/^kernel_relay_backlog = 2m$/kernel_relay_backlog = 64m\nkernel_relay_budget = 1m/' \
    "$T/mux.ini"
start_mux muxbudget "$T/mux.ini"
cat >"$T/three.py" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"PUT /three HTTP/1.1\r\nHost: sink.test\r\n\r\n")
print("sent", flush=True)
sys.stdin.readline()  # in the kernel now
try:
    s.sendall(b"t" * (3 << 20))  # then wait: the sink never reads
    print("ended", s.recv(1), flush=True)
except OSError as e:
    print(f"ended {e.__class__.__name__}", flush=True)
PYEOF
coproc TC { "$PY" -u "$T/three.py" "$PM"; }
read -r _ <&"${TC[0]}"
kernel_count 1
echo go >&"${TC[1]}"
read -r out <&"${TC[0]}" || true
assert_contains "$out" "ended" "the connection was closed"
wait_close muxbudget 'route=sink'
assert_grep 'route=sink .*reason="kernel backlog: .*kernel_relay_budget 1048576' "$T/muxbudget.log" \
    "closed for the budget of all connections"
stop_mux muxbudget
