#!/usr/bin/env python3
"""UDP on 443 test peers (tests/integ/udp_flows.sh).

backend TAG PORT: a UDP server on 127.0.0.1:PORT that answers every datagram with
    TAG + b":" + the datagram; before answering a DTLS-looking datagram (first byte 22)
    it sends the client a STUN Binding request of its own (transaction id
    b"BACKENDREQ01"), as an ICE-lite media server does before DTLS starts.
ice TAG PORT PREFIX: an ICE-lite media server on 127.0.0.1:PORT (tests/integ/udp_fanout.sh)
    that owns the server ufrags starting with PREFIX: a Binding request whose USERNAME is
    such a ufrag gets a Binding success, any other Binding request a 401 error response;
    every other datagram is answered with TAG + b":" + the datagram.
mute PORT: a UDP socket on 127.0.0.1:PORT that never answers.
record TAG PORT: a recording QUIC peer (tests/integ/udp_quic.sh; Debian 12 packages no
    HTTP/3 server): prints `got SRCPORT HEX` for every datagram, then answers it with a
    short-header-shaped datagram, 0x40 + TAG + b":" + the datagram.
quic PORT INITIAL: the client side of udp_quic.sh, see quic() below.
scenario ...: the client side, see scenario() below. Prints one line per step and
    exits non-zero at the first step that does not hold."""

import os
import random
import re
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerlib import exit_on_sigterm, say, stun_attr, stun_attrs, stun_message  # noqa: E402

BACKEND_TID = b"BACKENDREQ01"


def serve(port):
    """A server's UDP socket on 127.0.0.1:PORT, announced with `ready`."""
    exit_on_sigterm()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", int(port)))
    say("ready")
    return s


def backend(tag, port):
    s = serve(port)
    while True:
        d, a = s.recvfrom(65535)
        if d[:1] == b"\x16":
            s.sendto(stun_message(0x0001, BACKEND_TID, []), a)
        s.sendto(tag.encode() + b":" + d, a)


def ice(tag, port, prefix):
    s = serve(port)
    while True:
        d, a = s.recvfrom(65535)
        if len(d) >= 20 and d[:2] == b"\x00\x01":
            user = dict(stun_attrs(d[20:])).get(0x0006, b"")
            mine = user.split(b":")[0].startswith(prefix.encode())
            say("binding", user.decode(errors="replace"), "mine" if mine else "foreign")
            if mine:
                s.sendto(stun_message(0x0101, d[8:20], [stun_attr(0x0020, bytes(8))]), a)
            else:
                s.sendto(stun_message(0x0111, d[8:20], [stun_attr(0x0009, b"\0\0\x04\x01")]), a)
        else:
            s.sendto(tag.encode() + b":" + d, a)


def mute(port):
    s = serve(port)
    while True:
        s.recvfrom(65535)


def record(tag, port):
    s = serve(port)
    while True:
        d, a = s.recvfrom(65535)
        say("got", a[1], d.hex())
        s.sendto(b"\x40" + tag.encode() + b":" + d, a)


def quic(port, initial):
    """One client socket sends a captured QUIC Initial, then short-header datagrams whose
    first bytes fall in every RFC 9443 range (STUN, DTLS, ChannelData, RTP, long header):
    each must reach the quic backend (H) byte-exact and its answer come back. Meanwhile a
    STUN Binding from another socket reaches its own backend (T), and a second Initial
    from the STUN socket (a flow already) is dropped."""
    mux = ("127.0.0.1", int(port))
    q, st = new_sock(), new_sock()
    with open(initial, "rb") as f:
        first = f.read()
    ask(q, mux, first, b"\x40H:" + first, "the captured Initial reaches the quic backend")
    b = binding()
    ask(st, mux, b, b"T:" + b, "a STUN Binding from another socket reaches its backend")
    dcid = first[6 : 6 + first[5]]
    for lead in (0x41, 0x5F, 0x00, 0x01, 0x16, 0x30, 0x70, 0x80, 0xC9, 0xE0):
        d = bytes([lead]) + dcid + os.urandom(random.randint(20, 1300))
        ask(q, mux, d, b"\x40H:" + d, "a datagram starting 0x%02x follows the quic flow" % lead)
    st.sendto(first, mux)
    silent(st, "an Initial from a socket that is in a STUN flow")
    ask(st, mux, b, b"T:" + b, "the STUN flow still reaches its backend")
    say("quic done")


def binding(username=None, integrity=False):
    """A Binding request; integrity adds a MESSAGE-INTEGRITY (zeros: nobody checks it
    here), as every browser's ICE check carries one."""
    attrs = [stun_attr(0x0006, username.encode())] if username else []
    attrs += [stun_attr(0x0008, bytes(20))] if integrity else []
    return stun_message(0x0001, os.urandom(12), attrs)


def allocate():
    return stun_message(0x0003, os.urandom(12), [stun_attr(0x0019, b"\x11\0\0\0")])


DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10) + b"hello"
RTP = bytes([0x80, 0x6F, 0, 1]) + bytes(8) + b"media"
CHANNEL = bytes([0x40, 0x01, 0, 4]) + b"data"


def fail(msg):
    say("FAIL: " + msg)
    sys.exit(1)


def new_sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def ask(s, mux, data, want, what, timeout=5.0):
    """Sends data to mux and waits for the answer `want` (bytes), ignoring nothing:
    any other datagram fails the step."""
    s.sendto(data, mux)
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        fail("%s: no answer" % what)
    got = s.recv(65535)
    if got != want:
        fail("%s: got %r, expected %r" % (what, got[:40], want[:40]))
    say("ok " + what)
    return got


def silent(s, what, timeout=0.3):
    r, _, _ = select.select([s], [], [], timeout)
    if r:
        fail("%s: an answer came: %r" % (what, s.recv(65535)[:40]))


def count_reloads(log):
    with open(log, errors="replace") as f:
        return len(re.findall(r"reload: .* loaded", f.read()))


def scenario(port, pid, log, conf, newconf, flood):
    mux = ("127.0.0.1", int(port))
    a = new_sock()
    # 1. one client socket, two conversations: media (by ufrag) and TURN
    b1 = binding("dptA1234:cli1")
    ask(a, mux, b1, b"A:" + b1, "ICE check with ufrag dptA1234 reaches media server A")
    al = allocate()
    ask(a, mux, al, b"T:" + al, "TURN Allocate from the same socket reaches coturn's side")
    ask(a, mux, CHANNEL, b"T:" + CHANNEL, "ChannelData goes to the TURN side")
    # 2. the media server checks the client before DTLS; the answer goes back to it
    a.sendto(DTLS, mux)
    r, _, _ = select.select([a], [], [], 5)
    got = a.recv(65535) if r else b""
    if got != stun_message(0x0001, BACKEND_TID, []):
        fail("media server's Binding request: got %r" % got[:40])
    resp = stun_message(0x0101, BACKEND_TID, [])
    r, _, _ = select.select([a], [], [], 5)
    if not r or a.recv(65535) != b"A:" + DTLS:
        fail("DTLS echo from A")
    say("ok DTLS reaches A, which sends its own Binding request")
    ask(a, mux, resp, b"A:" + resp, "the client's Binding response goes back to A by id")
    ask(a, mux, RTP, b"A:" + RTP, "RTP goes to A")
    keep = stun_message(0x0011, os.urandom(12), [])
    ask(a, mux, keep, b"A:" + keep, "a Binding indication (ICE keepalive) goes to A")
    b = new_sock()
    b2 = binding("zzzz9999:cli2")
    ask(b, mux, b2, b"B:" + b2, "ICE check with ufrag zzzz9999 reaches media server B")
    # 3. a reload that moves ufrag dpt to server B: the flow keeps A, new flows take B
    before = count_reloads(log)
    os.replace(newconf, conf)
    os.kill(int(pid), signal.SIGHUP)
    deadline = time.time() + 10
    while count_reloads(log) == before:
        if time.time() > deadline:
            fail("no reload logged")
        time.sleep(0.05)
    ask(a, mux, RTP, b"A:" + RTP, "after SIGHUP the flow still reaches A")
    c = new_sock()
    b3 = binding("dptC5678:cli3")
    ask(c, mux, b3, b"B:" + b3, "after SIGHUP a new flow with ufrag dpt reaches B")
    # 4. hostile: datagrams of every first-byte range that open no flow
    junk = [new_sock() for _ in range(8)]
    for v in range(256):
        s = junk[v % len(junk)]
        s.sendto(bytes([v]) + os.urandom(random.randint(0, 60)), mux)
    s = junk[0]
    s.sendto(DTLS, mux)
    s.sendto(RTP, mux)
    s.sendto(CHANNEL, mux)
    s.sendto(stun_message(0x0101, os.urandom(12), []), mux)
    # a QUIC Initial with no quic route (unroutable), a Handshake packet (no client's
    # first datagram: dropped as quic)
    s.sendto(bytes([0xC3, 0, 0, 0, 1, 8]) + bytes(1194), mux)
    s.sendto(bytes([0xE3, 0, 0, 0, 1, 8]) + bytes(1194), mux)
    for s in junk:
        silent(s, "a datagram that opens no flow", 0.05)
    say("ok random datagrams answered by nobody")
    # 5. a flood of new flows from many source ports fills the table
    socks = [new_sock() for _ in range(int(flood))]
    for s in socks:
        s.sendto(binding(), mux)
    answered = 0
    deadline = time.time() + 3
    pending = set(socks)
    while pending and time.time() < deadline:
        r, _, _ = select.select(list(pending), [], [], 0.5)
        if not r:
            break
        for s in r:
            s.recv(65535)
            answered += 1
            pending.discard(s)
    say("flood: %d of %d new flows answered" % (answered, len(socks)))
    if answered == 0 or answered >= len(socks):
        fail("the flood should fill the table: %d of %d answered" % (answered, len(socks)))
    ask(a, mux, RTP, b"A:" + RTP, "the established flow keeps flowing during the flood")
    for s in socks:
        s.close()
    say("scenario done")


if __name__ == "__main__":
    if sys.argv[1] == "backend":
        backend(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "ice":
        ice(*sys.argv[2:5])
    elif sys.argv[1] == "mute":
        mute(sys.argv[2])
    elif sys.argv[1] == "record":
        record(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "quic":
        quic(*sys.argv[2:4])
    else:
        scenario(*sys.argv[2:8])
