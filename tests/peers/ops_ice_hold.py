#!/usr/bin/python3
"""A long-lived ICE-TCP connection (RFC 6544, RFC 4571 framing) for mux443's operations
tests: sends a framed STUN Binding request with USERNAME = USER and expects a framed
Binding success response with the same transaction id (what ice_tcp.py answers).
Prints `ready hold` after the first answer; on each SIGUSR1 sends a new Binding on the
same connection and prints `hold: ping N ok` or `hold: ping N FAILED ...`; exits 0 on
SIGTERM.

usage: ops_ice_hold.py HOST PORT USER"""

import os
import select
import signal
import socket
import struct
import sys
import time

from peerlib import family_of, recv_exact, say, stun_attr, stun_message


def binding(sock, user):
    txid = os.urandom(12)
    msg = stun_message(0x0001, txid, [
        stun_attr(0x0006, user.encode()),
        stun_attr(0x0024, struct.pack("!I", 0x6E001EFF)),  # PRIORITY
    ])
    sock.sendall(struct.pack("!H", len(msg)) + msg)
    r, _, _ = select.select([sock], [], [], 10)
    if not r:
        raise TimeoutError("no answer in 10 s")
    flen = struct.unpack("!H", recv_exact(sock, 2))[0]
    frame = recv_exact(sock, flen)
    mtype = struct.unpack("!H", frame[0:2])[0]
    if mtype != 0x0101 or frame[8:20] != txid:
        raise ValueError(f"type 0x{mtype:04x}, txid match {frame[8:20] == txid}")


def main():
    host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((host, port))
    sock.settimeout(None)
    binding(sock, user)
    say(f"ready hold local={sock.getsockname()[0]}:{sock.getsockname()[1]}")
    n = 0
    while True:
        sig = signal.sigwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
        if sig != signal.SIGUSR1:
            os._exit(0)
        n += 1
        t0 = time.monotonic()
        try:
            binding(sock, user)
            say(f"hold: ping {n} ok t={time.monotonic() - t0:.3f}")
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            say(f"hold: ping {n} FAILED {e.__class__.__name__}: {e}")


if __name__ == "__main__":
    main()
