#!/usr/bin/python3
"""A listener that never accepts and whose accept queue is full, so that new
connections to it get no SYN-ACK and time out (a backend that black-holes).

usage: blackhole.py PORT [--bind ADDR]"""

import argparse
import select
import socket
import time

from peerlib import exit_on_sigterm, listen_socket, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()
    exit_on_sigterm()
    ls = listen_socket(args.bind, args.port, backlog=0)
    fillers = []
    # Fill the accept queue: connect until a connect no longer completes quickly.
    for _ in range(16):
        c = socket.socket(ls.family, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex((args.bind, args.port))
        _, w, _ = select.select([], [c], [], 0.3)
        if not w or c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
            c.close()  # this one hangs: the queue is full
            break
        fillers.append(c)
    else:
        raise SystemExit("blackhole: accept queue never filled")
    say(f"ready blackhole on {args.bind}:{args.port} (queue holds {len(fillers)})")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
