#!/usr/bin/python3
"""Hostile clients for mux443's chaos test: THREADS threads open connections to mux443
for SECONDS seconds, each of a random kind (plain HTTP, WebSocket upgrade, STUN, ICE-TCP
with a random ufrag, TLS terminated by mux443 with HTTP inside, TLS passed through,
garbage, nothing at all), on the main listener or on the PROXY-protocol one, and each
doing random things: the first flight in random pieces with random delays, a stop
mid-hello, RST (SO_LINGER 0) before / during / after detection, half-close then read,
slow reading while the backend floods, sending a lot. The backend's behaviour is asked
for with a `chaos=MODE` token in the first flight (see chaos_backend.py).

Every operation has a timeout: a thread never waits on mux443 for more than a few
seconds, so a hang of mux443 shows up as timeouts, not as a hang of this script.
Prints `chaos-client: seed=S` first and one summary line per kind at the end, then
`chaos-client: done conns=N errors=E`. Exit 0 unless the script itself broke.

usage: chaos_client.py SEED HOST MAIN_PORT PROXY_PORT SECONDS THREADS
       chaos_client.py tls-two-records HOST PORT SNI HOSTHEADER [SECONDS]
  The second form is one deterministic check: right after the handshake it sends two TLS
  records in ONE TCP write (an HTTP request, then `SECOND-RECORD\n`) through mux443 to
  an echo backend and waits up to SECONDS (3) for both to come back; it prints
  `tls-two-records: ok t=...` (exit 0) or `tls-two-records: STUCK got=...` (exit 1)."""

import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import traceback

from peerlib import build_proxy_header, say, stun_attr, stun_message

KINDS = ["http", "ws", "stun", "turn", "ice", "tlsterm", "tlspass", "garbage", "empty"]
MODES = ["echo", "flood", "close", "rst", "noread", "delay", "halfclose", "sink"]
FATES = ["rst_early", "close_early", "partial", "full", "full", "full", "full", "full"]
ACTIONS = ["echo", "halfclose", "slowreader", "sendlot", "rst_mid", "idle", "close", "notify"]
OP_TIMEOUT = 3.0


def rst(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.conns = 0
        self.errors = 0

    def add(self, kind, what):
        with self.lock:
            self.c.setdefault(kind, {})
            self.c[kind][what] = self.c[kind].get(what, 0) + 1


RES = Results()


def send_pieces(sock, data, rng, slow=False):
    """Sends data cut at random offsets, with random pauses (sometimes long ones)."""
    if not data:
        return
    n = rng.choice([1, 1, 2, 3, 5, 8])
    cuts = sorted(rng.sample(range(1, len(data)), min(n - 1, len(data) - 1))) if len(data) > 1 else []
    prev = 0
    for cut in cuts + [len(data)]:
        sock.sendall(data[prev:cut])
        prev = cut
        if cut < len(data):
            time.sleep(rng.random() * (1.2 if slow else 0.15))


def drain(sock, secs, limit=1 << 30, slow=False):
    """Reads until EOF, error or `secs` seconds; returns how it ended."""
    end = time.monotonic() + secs
    got = 0
    while got < limit:
        left = end - time.monotonic()
        if left <= 0:
            return "timeout"
        sock.settimeout(left)
        try:
            d = sock.recv(4096 if slow else 65536)
        except socket.timeout:
            return "timeout"
        except ConnectionResetError:
            return "reset"
        if not d:
            return "eof"
        got += len(d)
        if slow:
            time.sleep(0.05)
    return "limit"


class TlsConn:
    """TLS over a blocking socket through memory BIOs: the bytes on the wire are ours
    to cut, delay or stop."""

    def __init__(self, sock, sni, alpn):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.s = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)

    def client_hello(self):
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def handshake(self, rng, pipelined=b""):
        """Completes the handshake; `pipelined` application data goes out in the same
        write as the client's Finished."""
        while True:
            try:
                self.obj.do_handshake()
                if pipelined:
                    self.obj.write(pipelined)
                self.s.sendall(self.out.read())
                return
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.s.sendall(data)
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("EOF in handshake")
                self.inc.write(d)

    def sendall(self, data):
        self.obj.write(data)
        self.s.sendall(self.out.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.s.sendall(data)
                d = self.s.recv(65536)
                if not d:
                    return b""
                self.inc.write(d)
            except ssl.SSLZeroReturnError:
                return b""

    def settimeout(self, t):
        self.s.settimeout(t)

    def close_notify(self):
        """Sends close_notify (TLS half-close); reading goes on."""
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self.s.sendall(self.out.read())

    def shutdown(self, how):
        self.s.shutdown(how)


def first_flight(kind, rng, mode):
    tok = f"chaos={mode}".encode()
    if kind in ("http", "tlsterm"):
        host = rng.choice(["web.test", "ref-not.test", "a.b.test", ""])
        return (f"GET /c/{rng.randint(0, 999)} HTTP/1.1\r\nHost: {host}\r\nX-Chaos: chaos={mode}\r\n"
                + "X-Pad: " + "p" * rng.choice([0, 10, 3000]) + "\r\n\r\n").encode()
    if kind == "ws":
        return (f"GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"X-Chaos: chaos={mode}\r\n\r\n").encode()
    if kind in ("stun", "turn"):
        mtype = 0x0001 if kind == "stun" else 0x0003
        return stun_message(mtype, os.urandom(12), [stun_attr(0x8022, tok)])
    if kind == "ice":
        r = rng.random()
        if r < 0.35:
            ufrag = f"o0{rng.randint(0, 20):04d}"
        elif r < 0.7:
            ufrag = f"o1{rng.randint(0, 20):04d}"
        elif r < 0.9:
            ufrag = f"nobody{rng.randint(0, 50)}"
        else:
            ufrag = rng.choice(["a", "bad:ufrag", "x" * 300, "é"])  # invalid / uncached
        user = f"{ufrag}:cli{rng.randint(0, 99)}".encode()
        msg = stun_message(0x0001, os.urandom(12), [stun_attr(0x0006, user), stun_attr(0x8022, tok)])
        frame = struct.pack("!H", len(msg)) + msg
        if rng.random() < 0.2:  # a second frame in the same flight
            frame += frame
        return frame
    if kind == "tlspass":
        return b"inner " + tok + b" " + os.urandom(rng.randint(0, 200))
    if kind == "garbage":
        return os.urandom(rng.randint(1, 5000)) + b" " + tok
    return b""


def relay_action(conn, raw, rng, action, kind):
    """After the first flight went out whole: conn carries data (plain or TLS), raw is the
    TCP socket."""
    conn.settimeout(OP_TIMEOUT)
    if action == "echo":
        for _ in range(rng.randint(1, 4)):
            conn.sendall(os.urandom(rng.choice([1, 100, 5000, 70000])))
            time.sleep(rng.random() * 0.1)
        try:
            conn.recv(65536)
        except socket.timeout:
            pass
        if rng.random() < 0.5:
            raw.shutdown(socket.SHUT_WR)
        return "echo:" + drain(conn, OP_TIMEOUT)
    if action == "halfclose":
        raw.shutdown(socket.SHUT_WR)
        return "halfclose:" + drain(conn, OP_TIMEOUT)
    if action == "notify":  # TLS: close_notify, then keep reading; plain: SHUT_WR after data
        conn.sendall(os.urandom(rng.choice([1, 3000])))
        if isinstance(conn, TlsConn):
            conn.close_notify()
        else:
            raw.shutdown(socket.SHUT_WR)
        return "notify:" + drain(conn, OP_TIMEOUT)
    if action == "slowreader":
        time.sleep(rng.random() * 3)
        end = drain(conn, rng.random() * 2, limit=200000, slow=True)
        rng.choice([raw.close, lambda: rst(raw)])()
        return "slowreader:" + end
    if action == "sendlot":
        blob = os.urandom(65536)
        total = rng.choice([16, 64]) * 65536
        sent = 0
        try:
            while sent < total:
                conn.sendall(blob)
                sent += len(blob)
        except socket.timeout:
            rst(raw)
            return "sendlot:stuck"
        rng.choice([raw.close, lambda: rst(raw)])()
        return "sendlot:sent"
    if action == "rst_mid":
        time.sleep(rng.random())
        rst(raw)
        return "rst_mid"
    if action == "idle":
        return "idle:" + drain(conn, 5.0)
    raw.close()
    return "close"


def one_conn(rng, host, pmain, pproxy):
    kind = rng.choice(KINDS)
    mode = rng.choice(MODES)
    fate = rng.choice(FATES)
    action = rng.choice(ACTIONS)
    if action == "slowreader":
        mode = "flood"
    via_proxy = rng.random() < 0.2
    s = socket.socket()
    s.settimeout(OP_TIMEOUT)
    tag = kind + ("/proxy" if via_proxy else "")
    try:
        s.connect((host, pproxy if via_proxy else pmain))
    except OSError as e:
        RES.add(tag, f"connect-failed:{e.__class__.__name__}")
        s.close()
        return
    try:
        if fate == "rst_early":
            time.sleep(rng.random() * 0.05)
            rst(s)
            RES.add(tag, "rst_early")
            return
        if fate == "close_early":
            s.close()
            RES.add(tag, "close_early")
            return
        if via_proxy:
            r = rng.random()
            src = ("192.0.2.%d" % rng.randint(1, 254), rng.randint(1024, 65535))
            if r < 0.6:
                hdr = build_proxy_header(rng.choice([1, 2]), src, (host, pmain))
            elif r < 0.8:
                hdr = build_proxy_header(2, src, (host, pmain))[: rng.randint(1, 20)]
            else:
                hdr = b"PROXY BOGUS " + os.urandom(rng.randint(0, 120)) + b"\r\n"
            send_pieces(s, hdr, rng)
        tls = None
        if kind in ("tlsterm", "tlspass"):
            sni = "term.test" if kind == "tlsterm" else "pass.test"
            alpn = rng.choice([None, ["http/1.1"], ["h2", "http/1.1"], ["stun.turn"]])
            tls = TlsConn(s, sni, alpn)
            hello = tls.client_hello()
            if fate == "partial":
                cut = rng.randint(1, len(hello) - 1)
                send_pieces(s, hello[:cut], rng, slow=rng.random() < 0.3)
                RES.add(tag, "partial-hello:" + rng.choice(["rst", "wait"]))
                if rng.random() < 0.5:
                    rst(s)
                else:
                    drain(s, rng.random() * 2.5)
                    s.close()
                return
            send_pieces(s, hello, rng, slow=rng.random() < 0.1)
            if rng.random() < 0.1:  # RST in the middle of the handshake
                time.sleep(rng.random() * 0.2)
                rst(s)
                RES.add(tag, "rst-in-handshake")
                return
            flight = first_flight(kind, rng, mode)
            if rng.random() < 0.3:
                tls.handshake(rng, pipelined=flight)
            else:
                tls.handshake(rng)
                tls.sendall(flight)
            RES.add(tag, relay_action(tls, s, rng, action, kind))
            return
        flight = first_flight(kind, rng, mode)
        if fate == "partial" and len(flight) > 1:
            cut = rng.randint(1, len(flight) - 1)
            send_pieces(s, flight[:cut], rng, slow=rng.random() < 0.3)
            r = rng.random()
            if r < 0.4:
                rst(s)
                RES.add(tag, "partial:rst")
            elif r < 0.6:
                s.shutdown(socket.SHUT_WR)
                RES.add(tag, "partial:shutwr:" + drain(s, OP_TIMEOUT))
            else:
                RES.add(tag, "partial:" + drain(s, rng.random() * 2.5))
                s.close()
            return
        if kind == "empty":
            RES.add(tag, "empty:" + drain(s, rng.random() * 2.5))
            rng.choice([s.close, lambda: rst(s)])()
            return
        send_pieces(s, flight, rng, slow=rng.random() < 0.1)
        RES.add(tag, relay_action(s, s, rng, action, kind))
    except (OSError, EOFError, ssl.SSLError, ValueError) as e:
        RES.add(tag, f"{action}:err:{e.__class__.__name__}")
    finally:
        try:
            s.close()
        except OSError:
            pass


def worker(idx, seed, host, pmain, pproxy, deadline):
    rng = random.Random(f"{seed}:client:{idx}")
    while time.monotonic() < deadline:
        with RES.lock:
            RES.conns += 1
        try:
            one_conn(rng, host, pmain, pproxy)
        except Exception:  # a bug in this script, not in mux443
            with RES.lock:
                RES.errors += 1
            traceback.print_exc()
        time.sleep(rng.random() * 0.05)


def tls_two_records(host, port, sni, hosthdr, secs=3.0):
    s = socket.create_connection((host, port), OP_TIMEOUT)
    tls = TlsConn(s, sni, None)
    s.sendall(tls.client_hello())
    tls.handshake(None)
    req = f"GET /two-records HTTP/1.1\r\nHost: {hosthdr}\r\n\r\n".encode()
    tls.obj.write(req)
    tls.obj.write(b"SECOND-RECORD\n")
    s.sendall(tls.out.read())  # both records in one segment
    got = b""
    t0 = time.monotonic()
    while b"SECOND-RECORD" not in got and time.monotonic() - t0 < secs:
        s.settimeout(max(0.01, secs - (time.monotonic() - t0)))
        try:
            d = tls.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        got += d
    s.close()
    if b"SECOND-RECORD" in got:
        say(f"tls-two-records: ok t={time.monotonic() - t0:.2f}")
        return 0
    say(f"tls-two-records: STUCK after {time.monotonic() - t0:.2f}s got={got!r}")
    return 1


def main():
    if sys.argv[1] == "tls-two-records":
        host, port, sni, hosthdr = sys.argv[2:6]
        secs = float(sys.argv[6]) if len(sys.argv) > 6 else 3.0
        sys.exit(tls_two_records(host, int(port), sni, hosthdr, secs))
    seed, host, pmain, pproxy, secs, nthreads = sys.argv[1:7]
    say(f"chaos-client: seed={seed} threads={nthreads} seconds={secs}")
    deadline = time.monotonic() + float(secs)
    threads = [threading.Thread(target=worker, args=(i, seed, host, int(pmain), int(pproxy), deadline),
                                daemon=True) for i in range(int(nthreads))]
    for t in threads:
        t.start()
    for t in threads:
        # Every connection is bounded (a few OP_TIMEOUTs at most).
        t.join(float(secs) + 60)
        if t.is_alive():
            say("chaos-client: a thread is stuck")
            os._exit(2)
    for kind in sorted(RES.c):
        say(f"chaos-client: {kind} " + " ".join(f"{k}={v}" for k, v in sorted(RES.c[kind].items())))
    say(f"chaos-client: done conns={RES.conns} errors={RES.errors}")
    sys.exit(1 if RES.errors else 0)


if __name__ == "__main__":
    main()
