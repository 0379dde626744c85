#!/usr/bin/python3
"""Captures a client's first flight for tests/vectors.

usage: first_flight.py PORT OUT.bin [--quiet S]

Listens on 127.0.0.1:PORT, accepts one connection, and stores what the client sends
until it has been quiet for --quiet seconds (default 0.5): OUT.bin, plus OUT.bin.json
with the peer, the size and time of each recv(). It never answers. Prints `ready` when listening."""

import argparse
import json
import socket
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("--quiet", type=float, default=0.5)
    args = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(1)
    print("ready", flush=True)
    s, peer = ls.accept()
    t0 = time.monotonic()
    s.settimeout(args.quiet)
    data, sizes, times = b"", [], []
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        sizes.append(len(chunk))
        times.append(round((time.monotonic() - t0) * 1000, 3))
    with open(args.out, "wb") as f:
        f.write(data)
    meta = {"peer": "%s:%d" % peer, "recv_sizes": sizes, "recv_ms": times, "bytes": len(data)}
    with open(args.out + ".json", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("captured %d bytes" % len(data), flush=True)


if __name__ == "__main__":
    main()
