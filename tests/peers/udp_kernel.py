#!/usr/bin/env python3
"""UDP kernel path test peers (tests/integ/udp_kernel.sh).

backend ADDR PORT: a UDP server that answers a STUN Binding request with a Binding
    success (same transaction id: the flow's side is then verified), answers a Binding
    success whose transaction id is BACKEND_TID with b"\\x80RESP-OK", sends a DTLS-looking
    datagram (first byte 22) a Binding request of its own (BACKEND_TID) before echoing
    it, and echoes everything else unchanged.
client HOST PORT N ADMIN EXPECT: the client side, see client() below. ADMIN is the admin
    API's HOST:PORT; EXPECT says what should carry the RTP and ChannelData: `kernel` (both
    ways, user space relays none of it), `half` (the sides enter the kernel, but user space
    may relay one way: a remote client while lo refuses our own source address from
    elsewhere), `user` (nothing enters the kernel). Prints one line per step and exits
    non-zero at the first that fails.
hang HOST PORT ADMIN PID: the safety net. With a flow in the kernel, mux443 (PID) is
    stopped (SIGSTOP): the kernel relays until the flow's deadline passes, then a datagram
    goes unanswered (it waits in mux443's socket); after SIGCONT it is answered.
big HOST PORT ADMIN: with the path's MTU below 1,200 bytes (set by the test), a flow in
    the kernel still gets 1,200-byte datagrams echoed both ways (fragmented: user space's,
    since a redirect does not fragment), and small ones still through the kernel.
quic HOST PORT ADMIN INITIAL: a QUIC flow (opened by the client Initial in file INITIAL):
    short headers, and greased ones whose first byte is in STUN's range, cross the kernel
    both ways.
HOST and ADDR may be IPv6 addresses (the sockets are then IPv6 ones)."""

import os
import re
import select
import signal
import socket
import struct
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import exit_on_sigterm, say, stun_attr, stun_message  # noqa: E402

BACKEND_TID = b"BACKENDREQ01"


def udp_socket(host, port=0):
    """A UDP socket of host's family, bound to its wildcard address (or to host, port)."""
    v6 = ":" in host
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host if port else ("::" if v6 else "0.0.0.0"), int(port)))
    return s


def backend(addr, port):
    exit_on_sigterm()
    s = udp_socket(addr, port)
    say("ready")
    while True:
        d, a = s.recvfrom(65535)
        if len(d) >= 20 and d[:2] == b"\x00\x01":
            s.sendto(stun_message(0x0101, d[8:20], []), a)
        elif len(d) >= 20 and d[:2] == b"\x01\x01" and d[8:20] == BACKEND_TID:
            say("response from", a[1])
            s.sendto(b"\x80RESP-OK", a)
        else:
            if d[:1] == b"\x16":
                s.sendto(stun_message(0x0001, BACKEND_TID, []), a)
            s.sendto(d, a)


def fail(msg):
    say("FAIL: " + msg)
    sys.exit(1)


def metrics(admin):
    with urllib.request.urlopen("http://%s/metrics" % admin, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z0-9_]+(\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(3))
    return out


def wait_metric(admin, name, want, secs=10):
    deadline = time.monotonic() + secs
    while True:
        v = metrics(admin).get(name)
        if v == want:
            return
        if time.monotonic() > deadline:
            fail("%s: %r, expected %r" % (name, v, want))
        time.sleep(0.05)


USER = ('mux443_udp_datagrams_total{direction="in"}', 'mux443_udp_datagrams_total{direction="out"}')


def user_counts(admin):
    m = metrics(admin)
    return tuple(m.get(k) for k in USER)


def recv(s, what, timeout=5.0):
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        fail("%s: no answer" % what)
    return s.recv(65535)


def binding(username=None):
    attrs = [stun_attr(0x0006, username.encode())] if username else []
    return stun_message(0x0001, os.urandom(12), attrs)


def stream(s, mux, n, make, what):
    """n datagrams made by make(i), sent in windows of 16; each window's echoes must come
    back byte-exact and in the order sent."""
    for base in range(0, n, 16):
        sent = [make(i) for i in range(base, min(n, base + 16))]
        for d in sent:
            s.sendto(d, mux)
        for k, d in enumerate(sent):
            got = recv(s, "%s %d" % (what, base + k))
            if got != d:
                fail("%s %d: got %r, expected %r" % (what, base + k, got[:16], d[:16]))
    say("ok %d %s datagrams echoed byte-exact and in order" % (n, what))


def rtp(i):
    return struct.pack("!BBHII", 0x80, 0x6F, i & 0xFFFF, i * 160, 0x1234) + bytes([i & 0xFF]) * 188


def channel(i):
    body = struct.pack("!I", i) + b"c" * 96
    return struct.pack("!HH", 0x4001, len(body)) + body


def client(host, port, n, admin, expect):
    mux = (host, int(port))
    n = int(n)
    sides = (lambda k: 0) if expect == "user" else (lambda k: k)

    def same_user(before, what):
        if expect == "kernel" and user_counts(admin) != before:
            fail("user space relayed %s: %r -> %r" % (what, before, user_counts(admin)))
        say("ok %s: user space relayed %s" % (what, "none" if expect == "kernel" else "some"))

    s = udp_socket(host)

    # 1. the media side opens and is verified in user space, then enters the kernel
    b = binding("kmed:cli1")
    s.sendto(b, mux)
    got = recv(s, "binding (media)")
    if got[:2] != b"\x01\x01" or got[8:20] != b[8:20]:
        fail("binding (media): got %r" % got[:20])
    wait_metric(admin, "mux443_udp_kernel_flows", sides(1))
    say("ok media side verified, kernel sides %d" % sides(1))
    before = user_counts(admin)

    # 2. RTP both ways through the kernel: user space relays none of it
    stream(s, mux, n, rtp, "rtp")
    same_user(before, "rtp")

    # 3. the TURN side of the same client socket, then ChannelData through the kernel
    b = binding()
    s.sendto(b, mux)
    got = recv(s, "binding (turn)")
    if got[:2] != b"\x01\x01" or got[8:20] != b[8:20]:
        fail("binding (turn): got %r" % got[:20])
    wait_metric(admin, "mux443_udp_kernel_flows", sides(2))
    before = user_counts(admin)
    stream(s, mux, n, channel, "channeldata")
    stream(s, mux, 16, rtp, "rtp-again")
    same_user(before, "channeldata")

    # 4. the media server's own Binding request reaches the client through user space
    # (which notes its transaction id) and the client's answer goes back to it
    dtls = bytes([22, 0xFE, 0xFD]) + bytes(10) + b"hello"
    s.sendto(dtls, mux)
    got = sorted([recv(s, "dtls"), recv(s, "dtls")])
    req = [g for g in got if g[:2] == b"\x00\x01"]
    if len(req) != 1 or req[0][8:20] != BACKEND_TID or dtls not in got:
        fail("dtls: got %r" % [g[:20] for g in got])
    s.sendto(stun_message(0x0101, BACKEND_TID, []), mux)
    if recv(s, "response") != b"\x80RESP-OK":
        fail("the backend's request was not answered back to it")
    say("ok backend STUN request answered back by transaction id")
    after = user_counts(admin)
    say("user space relayed in=%d out=%d" % (after[0] - before[0], after[1] - before[1]))

    # 5. the flow idles out: its entries go, the next RTP is not relayed (no flow: user
    # space drops it), a Binding opens a new flow through user space
    wait_metric(admin, "mux443_udp_kernel_flows", 0, 20)
    wait_metric(admin, "mux443_udp_table_flows", 0, 20)
    say("ok flow ended, out of the kernel")
    s.sendto(rtp(0), mux)
    r, _, _ = select.select([s], [], [], 0.5)
    if r:
        fail("RTP after the flow ended was relayed: %r" % s.recv(100)[:16])
    b = binding("kmed:cli1")
    s.sendto(b, mux)
    got = recv(s, "binding (new flow)")
    if got[8:20] != b[8:20]:
        fail("binding (new flow): got %r" % got[:20])
    wait_metric(admin, "mux443_udp_kernel_flows", sides(1))
    stream(s, mux, 16, rtp, "rtp-new-flow")
    say("client done")


def hang(host, port, admin, pid):
    mux = (host, int(port))
    pid = int(pid)
    s = udp_socket(host)
    kernel = metrics(admin).get("mux443_udp_kernel_flows")
    s.sendto(binding("kmed:hang"), mux)
    recv(s, "binding")
    wait_metric(admin, "mux443_udp_kernel_flows", kernel + 1)
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        i = 0
        while True:
            d = rtp(i)
            s.sendto(d, mux)
            r, _, _ = select.select([s], [], [], 0.3)
            if not r:
                break
            if s.recv(65535) != d:
                fail("hang: a wrong echo")
            if time.monotonic() > deadline:
                fail("hang: the kernel still relays 20 s after mux443 stopped")
            i += 1
        say("ok the kernel relayed %d datagrams while mux443 was stopped, then stopped" % i)
    finally:
        os.kill(pid, signal.SIGCONT)
    if recv(s, "after SIGCONT", 10) != d:
        fail("hang: the waiting datagram was not relayed after SIGCONT")
    say("hang done")


def big(host, port, admin):
    mux = (host, int(port))
    s = udp_socket(host)
    kernel = metrics(admin).get("mux443_udp_kernel_flows")
    s.sendto(binding("kmed:big1"), mux)
    recv(s, "binding")
    wait_metric(admin, "mux443_udp_kernel_flows", kernel + 1)
    stream(s, mux, 8, lambda i: rtp(i) + bytes([i]) * 1000, "big")
    before = user_counts(admin)
    stream(s, mux, 32, rtp, "small")
    if user_counts(admin) != before:
        fail("user space relayed the small ones: %r -> %r" % (before, user_counts(admin)))
    say("big done")


def quic(host, port, admin, initial):
    mux = (host, int(port))
    s = udp_socket(host)
    kernel = metrics(admin).get("mux443_udp_kernel_flows")
    with open(initial, "rb") as f:
        first = f.read()
    s.sendto(first, mux)
    if recv(s, "initial") != first:
        fail("initial: not echoed")
    wait_metric(admin, "mux443_udp_kernel_flows", kernel + 1)
    before = user_counts(admin)
    stream(s, mux, 100, lambda i: bytes([0x40 | (i & 0x3F)]) + struct.pack("!I", i) + b"q" * 60,
           "quic-short")
    # RFC 9287 greases the fixed bit: a short header may start with 0-3, STUN's first
    # byte, which only a QUIC flow's entry relays
    stream(s, mux, 16, lambda i: b"\x02\x00" + struct.pack("!I", i) + b"g" * 40, "quic-greased")
    if user_counts(admin) != before:
        fail("user space relayed QUIC: %r -> %r" % (before, user_counts(admin)))
    say("quic done")


if __name__ == "__main__":
    {"backend": backend, "client": client, "quic": quic, "hang": hang, "big": big}[sys.argv[1]](*sys.argv[2:])
