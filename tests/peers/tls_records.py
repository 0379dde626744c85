#!/usr/bin/python3
"""Sends a captured first flight inside TLS, split into TLS records a chosen way.

usage: tls_records.py HOST PORT --sni NAME --ca FILE --file VECTOR --split SPEC [--timeout S]

  Verifies the server certificate against --ca and --sni, then writes the bytes of
  VECTOR with one SSL write per piece: OpenSSL puts each write (under 16 KiB) in a TLS
  record of its own, so the server sees the flight spread over that many records.
  SPEC: N        pieces of N bytes (1 = one byte per record)
        A,B,...  pieces of A bytes, then B, ..., the rest in one piece
        random:S pieces of 1..16 bytes drawn from the seed S
  The backend behind the server echoes: the reply must be VECTOR again, byte for byte.
  Then sends close_notify and waits for the server's.
  Prints `records=R bytes=N sha256=HEX echo=ok` and exits 0, or prints the error on
  stderr as `tls_records: ...` and exits 1."""

import argparse
import hashlib
import random
import socket
import ssl
import sys

from peerlib import expect_echo, say


def pieces(data, spec):
    out, pos = [], 0
    if spec.startswith("random:"):
        rng = random.Random(int(spec[7:]))
        while pos < len(data):
            n = rng.randint(1, 16)
            out.append(data[pos:pos + n])
            pos += n
        return out
    sizes = [int(x) for x in spec.split(",")]
    if len(sizes) == 1:
        n = sizes[0]
        return [data[i:i + n] for i in range(0, len(data), n)]
    for n in sizes:
        if pos < len(data):
            out.append(data[pos:pos + n])
            pos += n
    if pos < len(data):
        out.append(data[pos:])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--sni", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--timeout", type=float, default=5)
    args = ap.parse_args()
    data = open(args.file, "rb").read()
    parts = pieces(data, args.split)
    assert b"".join(parts) == data
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    tls = ctx.wrap_socket(sock, server_hostname=args.sni)
    for p in parts:
        if tls.write(p) != len(p):
            raise OSError("short SSL write")
    expect_echo(tls, data, args.timeout)
    tls.unwrap()
    sock.close()
    say(f"records={len(parts)} bytes={len(data)} sha256={hashlib.sha256(data).hexdigest()} echo=ok")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - one line for the test's log
        print(f"tls_records: {e.__class__.__name__}: {e}", file=sys.stderr)
        sys.exit(1)
