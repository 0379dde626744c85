#!/usr/bin/python3
"""Hostile backends for mux443's chaos test, all in one process (one thread per
listening port and per connection). Prints `ready chaos-backend` once every port listens
and exits 0 on SIGTERM.

usage: chaos_backend.py SEED ROLE:PORT [ROLE:PORT...]
  ROLE
  ref        a well-behaved echo (the reference connection's backend)
  chaos      per connection a random behaviour (or the one named by a `chaos=MODE`
             token in the first bytes): echo, flood, close, rst, noread, delay, halfclose,
             sink; sometimes delays accept()
  tlspass    a TLS server (own certificate: CERT,KEY from $CHAOS_PASS_CERT / _KEY) that
             then behaves like `chaos` inside, or RSTs during the handshake
  iceN       ICE-TCP media server N (N = 0, 1): answers a framed Binding success to
             ufrags starting with `oN`, a 401 to others, then echoes frames / misbehaves
  iceerr     answers 401 to everything
  icesilent  reads, never answers
  iceclose   closes at once
  icerst     RST after reading the first bytes
  icebig     answers a frame header announcing 4000 bytes, then junk, then silence
  icepartial answers half of a Binding success, then waits and closes
  tarpit     listens with a backlog of 1 and never accepts (connects hang once full)
Every connection ends within a few seconds whatever the peer does."""

import os
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time

from peerlib import exit_on_sigterm, recv_exact, say, stun_attr, stun_message

MODES = ["echo", "flood", "close", "rst", "noread", "delay", "halfclose", "sink"]
TOKEN = re.compile(rb"chaos=([a-z]+)")
HOLD_MAX = 4.0  # no connection is kept longer than this without traffic


def rst(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}

    def inc(self, k):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + 1


STATS = Stats()


def behave(conn, rng, first, mode, stats_tag):
    """Runs one of MODES on conn (a socket or an SSLSocket) after `first` was read."""
    STATS.inc(f"{stats_tag}:{mode}")
    conn.settimeout(HOLD_MAX)
    if mode == "close":
        conn.close()
        return
    if mode == "rst":
        time.sleep(rng.random() * 0.3)
        rst(conn)
        return
    if mode == "noread":
        time.sleep(rng.random() * HOLD_MAX)
        rng.choice([conn.close, lambda: rst(conn)])()
        return
    if mode == "flood":
        blob = os.urandom(65536)
        total = rng.choice([1, 4, 16, 64]) * 65536
        sent = 0
        conn.settimeout(2.0)
        while sent < total:
            conn.sendall(blob)
            sent += len(blob)
        if rng.random() < 0.5:
            rst(conn)
        else:
            conn.close()
        return
    if mode == "delay":
        time.sleep(rng.random() * 1.5)
    if mode == "halfclose":
        conn.sendall(first[:64] or b"x")
        try:
            conn.shutdown(socket.SHUT_WR)
        except (OSError, ValueError):
            pass
        while conn.recv(65536):
            pass
        conn.close()
        return
    data = first
    while True:
        if data and mode != "sink":
            conn.sendall(data)
        data = conn.recv(65536)
        if not data:
            break
    try:
        conn.shutdown(socket.SHUT_WR)
    except (OSError, ValueError):
        pass
    conn.close()


def pick_mode(rng, first):
    m = TOKEN.search(first)
    if m and m.group(1).decode() in MODES:
        return m.group(1).decode()
    return rng.choice(MODES)


def serve_ref(conn, rng):
    conn.settimeout(None)
    while True:
        d = conn.recv(65536)
        if not d:
            break
        conn.sendall(d)
    conn.close()


def serve_chaos(conn, rng):
    conn.settimeout(HOLD_MAX)
    first = conn.recv(65536)
    if not first:
        conn.close()
        return
    behave(conn, rng, first, pick_mode(rng, first), "chaos")


def serve_tlspass(conn, rng, ctx):
    conn.settimeout(HOLD_MAX)
    if rng.random() < 0.1:
        conn.recv(100)
        STATS.inc("tlspass:rst-in-handshake")
        rst(conn)
        return
    t = ctx.wrap_socket(conn, server_side=True)
    first = t.recv(65536)
    if not first:
        t.close()
        return
    behave(t, rng, first, pick_mode(rng, first), "tlspass")


def ice_frames(conn):
    while True:
        flen = struct.unpack("!H", recv_exact(conn, 2))[0]
        yield recv_exact(conn, flen)


def ice_answer(frame, ok):
    txid = frame[8:20]
    if ok:
        return stun_message(0x0101, txid, [stun_attr(0x8022, b"chaos")])
    err = stun_attr(0x0009, struct.pack("!HBB", 0, 4, 1) + b"Unauthorized")
    return stun_message(0x0111, txid, [err])


def serve_ice(conn, rng, role):
    conn.settimeout(HOLD_MAX)
    STATS.inc(role)
    if role == "iceclose":
        conn.close()
        return
    if role == "icerst":
        conn.recv(10)
        rst(conn)
        return
    if role == "icesilent":
        while conn.recv(4096):
            pass
        conn.close()
        return
    if role == "icebig":
        conn.recv(4096)
        conn.sendall(struct.pack("!H", 4000) + os.urandom(rng.randint(0, 1500)))
        time.sleep(rng.random() * 2)
        conn.close()
        return
    frames = ice_frames(conn)
    frame = next(frames)
    user = b""
    off = 20
    while off + 4 <= len(frame):
        t, ln = struct.unpack("!HH", frame[off:off + 4])
        if t == 0x0006:
            user = frame[off + 4:off + 4 + ln]
        off += 4 + ln + (-ln % 4)
    ok = role.startswith("ice") and role[3:].isdigit() and user.startswith(b"o" + role[3:].encode())
    resp = ice_answer(frame, ok)
    resp = struct.pack("!H", len(resp)) + resp
    if role == "icepartial":
        conn.sendall(resp[: len(resp) // 2])
        time.sleep(rng.random() * 2)
        conn.close()
        return
    if not ok:
        conn.sendall(resp)
        while conn.recv(4096):
            pass
        conn.close()
        return
    # The owner: answer (sometimes in pieces), then echo frames or misbehave.
    cut = rng.randint(1, len(resp) - 1) if rng.random() < 0.3 else len(resp)
    conn.sendall(resp[:cut])
    if cut < len(resp):
        time.sleep(rng.random() * 0.2)
        conn.sendall(resp[cut:])
    mode = rng.choice(["echo", "echo", "flood", "close", "rst", "noread"])
    STATS.inc(f"{role}:{mode}")
    if mode == "echo":
        for f in frames:
            conn.sendall(struct.pack("!H", len(f)) + f)
    elif mode == "flood":
        blob = struct.pack("!H", 1000) + os.urandom(1000)
        for _ in range(rng.choice([10, 200, 2000])):
            conn.sendall(blob)
        conn.close()
    elif mode == "close":
        conn.close()
    elif mode == "rst":
        rst(conn)
    else:
        time.sleep(rng.random() * HOLD_MAX)
        conn.close()


def run_conn(fn, conn, *args):
    try:
        fn(conn, *args)
    except (OSError, EOFError, ssl.SSLError, StopIteration, ValueError):
        STATS.inc("peer-error")
    finally:
        try:
            conn.close()
        except OSError:
            pass


def accept_loop(role, ls, seed, ctx):
    n = 0
    base = random.Random(f"{seed}:{role}")
    while True:
        if role == "chaos" and base.random() < 0.05:
            time.sleep(base.random() * 0.5)  # a slow accept()
        conn, _ = ls.accept()
        n += 1
        rng = random.Random(f"{seed}:{role}:{n}")
        if role == "ref":
            args = (serve_ref, conn, rng)
        elif role == "chaos":
            args = (serve_chaos, conn, rng)
        elif role == "tlspass":
            args = (serve_tlspass, conn, rng, ctx)
        else:
            args = (serve_ice, conn, rng, role)
        threading.Thread(target=run_conn, args=args, daemon=True).start()


def main():
    seed = sys.argv[1]
    exit_on_sigterm()
    ctx = None
    if os.environ.get("CHAOS_PASS_CERT"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.environ["CHAOS_PASS_CERT"], os.environ["CHAOS_PASS_KEY"])
    keep = []
    for spec in sys.argv[2:]:
        role, port = spec.split(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(port)))
        if role == "tarpit":
            s.listen(1)  # never accepted: once the queue is full, connects hang
            keep.append(s)
            continue
        s.listen(256)
        threading.Thread(target=accept_loop, args=(role, s, seed, ctx), daemon=True).start()
    say(f"ready chaos-backend seed={seed}")
    while True:
        time.sleep(5)
        with STATS.lock:
            say("stats " + " ".join(f"{k}={v}" for k, v in sorted(STATS.c.items())))


if __name__ == "__main__":
    main()
