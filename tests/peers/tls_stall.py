#!/usr/bin/python3
"""Stalling TLS clients for mux443's tests: opens COUNT connections at once (from
--bind), sends a real ClientHello on each (Python ssl, SNI --sni), then sends nothing
more: the handshake never completes. Waits until the server has closed every one of
them, or --wait seconds.

usage: tls_stall.py HOST PORT [--sni NAME] [--bind ADDR] [--count N] [--wait S] [--garbage]
  --garbage  after the hello, send a 64-byte record that no handshake accepts (random
             bytes as an encrypted record: a broken handshake)
Prints `ready sent=N` once every hello is out, then at the end
`closed=K of N answered=A` (A: connections on which the server sent bytes, e.g. its
ServerHello, before closing). Exit 0 when all N were closed, 1 otherwise."""

import argparse
import selectors
import socket
import ssl
import sys
import time

from peerlib import say


def client_hello(sni):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--sni")
    ap.add_argument("--bind")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--wait", type=float, default=10)
    ap.add_argument("--garbage", action="store_true")
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(args.count):
        s = socket.create_connection((args.host, args.port), timeout=5,
                                     source_address=(args.bind, 0) if args.bind else None)
        s.sendall(client_hello(args.sni))  # a fresh hello (random, key share) each time
        if args.garbage:
            s.sendall(b"\x17\x03\x03\x00\x3b" + b"\xa5" * 59)  # app data before Finished
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    say(f"ready sent={len(socks)}")
    closed, answered = set(), set()
    deadline = time.monotonic() + args.wait
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if data:
                answered.add(s)
                continue
            closed.add(s)
            sel.unregister(s)
    say(f"closed={len(closed)} of {len(socks)} answered={len(answered)}")
    for s in socks:
        s.close()
    return 0 if len(closed) == len(socks) else 1


if __name__ == "__main__":
    sys.exit(main())
