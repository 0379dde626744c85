#!/usr/bin/python3
"""Bulk transfer through an echo backend: sends MB megabytes of random data while
reading the echo back at a limited rate (a slow reader: back-pressure), and prints
`sent=N sent_sha256=HEX recv=N recv_sha256=HEX t=SECONDS`.

usage: bulk.py HOST PORT [--mb 20] [--read-rate MB_PER_S] [--pause-first SEC] [--prefix S]
  --read-rate  read at most this many MB/s (default 8)
  --pause-first  read nothing for SEC seconds at the start while the sender pushes:
                 a relay without back-pressure would buffer the whole transfer
  --prefix       bytes sent first (part of the hashed stream), default "\xffBULK\n",
                 which no mux443 probe recognises (routed by `default`)"""

import argparse
import hashlib
import os
import socket
import sys
import threading
import time

from peerlib import say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--read-rate", type=float, default=8)
    ap.add_argument("--pause-first", type=float, default=0)
    ap.add_argument("--prefix", default="\xffBULK\n")
    args = ap.parse_args()
    total = int(args.mb * 1024 * 1024)
    sock = socket.create_connection((args.host, args.port), timeout=30)
    sock.settimeout(60)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    t0 = time.monotonic()
    err = []

    def sender():
        left = total
        try:
            pre = args.prefix.encode("latin-1").decode("unicode_escape").encode("latin-1")
            pre = pre[:left]
            hs.update(pre)
            sock.sendall(pre)
            left -= len(pre)
            while left:
                chunk = os.urandom(min(65536, left))
                hs.update(chunk)
                sock.sendall(chunk)
                left -= len(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(f"send: {e}")

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    if args.pause_first:
        say(f"paused reading for {args.pause_first}s")
        time.sleep(args.pause_first)
        say("reading")
        t0 = time.monotonic()
    got = 0
    rate = args.read_rate * 1024 * 1024
    try:
        while True:
            d = sock.recv(16384)
            if not d:
                break
            hr.update(d)
            got += len(d)
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    except OSError as e:
        err.append(f"recv: {e}")
    th.join(60)
    say(f"sent={total} sent_sha256={hs.hexdigest()} recv={got} recv_sha256={hr.hexdigest()}"
        f" t={time.monotonic() - t0:.2f}")
    if err:
        print("bulk: " + "; ".join(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
