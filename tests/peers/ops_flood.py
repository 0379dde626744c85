#!/usr/bin/python3
"""Connection flood for mux443's operations tests: opens N TCP connections to HOST:PORT
that stay open and silent (or send DATA once), prints
`ready flood opened=N failed=M` once every connect has completed or failed, then holds
them all until SIGTERM (exit 0), which closes them at once. --ice sends each connection
an ICE-TCP Binding request with a random ufrag pair instead (with MESSAGE-INTEGRITY, or
`--ice no-integrity` without).

usage: ops_flood.py HOST PORT N [--bind IP] [--data S | --ice integrity|no-integrity]
                    [--timeout SEC]"""

import argparse
import codecs
import errno
import os
import select
import socket
import time

from peerlib import exit_on_sigterm, family_of, ice_binding, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--bind")
    ap.add_argument("--data")
    ap.add_argument("--ice", choices=["integrity", "no-integrity"])
    ap.add_argument("--timeout", type=float, default=10)
    args = ap.parse_args()
    exit_on_sigterm()
    payload = codecs.escape_decode(args.data.encode())[0] if args.data else b""

    pending, opened, failed = {}, [], 0
    for _ in range(args.n):
        s = socket.socket(family_of(args.host), socket.SOCK_STREAM)
        if args.bind:
            s.bind((args.bind, 0))
        s.setblocking(False)
        rc = s.connect_ex((args.host, args.port))
        if rc in (0, errno.EINPROGRESS):
            pending[s.fileno()] = s
        else:
            failed += 1
            s.close()
    deadline = time.monotonic() + args.timeout
    # poll, not select: a flood may hold descriptors past FD_SETSIZE (1024).
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    while pending and time.monotonic() < deadline:
        ready = poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
        for fd, _ in ready:
            poller.unregister(fd)
            s = pending.pop(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                opened.append(s)
                if args.ice:
                    user = f"{os.urandom(6).hex()}:{os.urandom(4).hex()}"
                    s.send(ice_binding(user, integrity=args.ice == "integrity"))
                elif payload:
                    s.send(payload)
            else:
                failed += 1
                s.close()
    failed += len(pending)
    say(f"ready flood opened={len(opened)} failed={failed}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
