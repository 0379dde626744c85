#!/usr/bin/python3
"""A TLS client that sends a request, then reads nothing until told to (SIGUSR1), then
reads everything and says how the stream ended: with the server's close_notify (a clean
TLS end of stream) or truncated (TCP FIN without close_notify).

usage: tls_slow_reader.py HOST PORT --request TEXT [--sni NAME] [--ca FILE] [--wait S]
  --request  sent after the handshake (Python escapes: \\r\\n)
  --wait     seconds to wait for SIGUSR1 before giving up (default 60)
Prints `ready request sent`, then on SIGUSR1 reads to the end and prints
`eof close_notify recv=N sha256=HEX` (exit 0) or `eof truncated recv=N sha256=HEX:
REASON` (exit 1). Reads with suppress_ragged_eofs=False, so a missing close_notify is
an error instead of an ordinary end of stream."""

import argparse
import codecs
import hashlib
import signal
import socket
import ssl
import sys

from peerlib import say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--request", required=True)
    ap.add_argument("--sni")
    ap.add_argument("--ca")
    ap.add_argument("--wait", type=float, default=60)

    args = ap.parse_args()
    # Blocked before anything can send it; taken with sigtimedwait below.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.ca:
        ctx.load_verify_locations(args.ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection((args.host, args.port), timeout=10)
    tls = ctx.wrap_socket(sock, server_hostname=args.sni, suppress_ragged_eofs=False)
    tls.sendall(codecs.escape_decode(args.request.encode())[0])
    say("ready request sent")
    if signal.sigtimedwait([signal.SIGUSR1], args.wait) is None:
        say(f"no SIGUSR1 within {args.wait}s")
        return 1
    h = hashlib.sha256()
    got = 0
    try:
        while True:
            d = tls.recv(65536)
            if not d:
                break
            h.update(d)
            got += len(d)
    except (ssl.SSLError, OSError) as e:
        say(f"eof truncated recv={got} sha256={h.hexdigest()}: {e.__class__.__name__}: {e}")
        return 1
    say(f"eof close_notify recv={got} sha256={h.hexdigest()}")
    tls.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
