#!/usr/bin/python3
"""TLS client peer for mux443's TLS termination tests (Python ssl module).

usage: tls_client.py HOST PORT [--sni NAME] [--ca FILE] [--alpn P1,P2] [--bind ADDR]
                     [--data TEXT] [--timeout S] [--hold | --truncate | --fin-first | --notify-first]
                     [--ws PATH --message M [--count N]]

  Verifies the server certificate against --ca (and --sni as the host name) when --ca
  is given, otherwise accepts any certificate. After the handshake prints one line
  `tls: version=TLSv1.3 alpn=http/1.1 cipher=... subject=CN`.
  raw mode (default): sends --data (Python escapes: \\r\\n, \\x00), then prints what
    comes back until EOF or --timeout, as `reply: ...` lines (text, replace errors), and
    `eof` when the server closed.
  --truncate (raw mode): the reply must echo --data; then ends its stream with a bare
    FIN, no close_notify (a truncated TLS stream), and prints `eof truncated` once the
    server closed too.
  --fin-first (raw mode): sends --data, then at once a bare FIN (no close_notify), keeps
    its TLS state (memory BIOs) and prints what comes back as `reply: ...` lines, then
    `eof close_notify` (the server ended cleanly) or `eof fin` (a FIN alone).
  --notify-first: the same with a clean half-close (close_notify, then the FIN).
  --hold (raw mode): the reply must echo --data; prints `ready hold`, then on each
    SIGUSR1 sends `ping N\\n`, expects it back and prints `hold: ping N ok` or
    `hold: ping N FAILED ...`; exits 0 on SIGTERM.
  --ws PATH: WebSocket over this TLS (python3-websockets 10.4, wss://SNI:PORT/PATH),
    sends --message --count times and prints each reply as `ws-reply: ...`.
Exit status: 0 on success, 1 on any error (printed on stderr as `tls_client: ...`)."""

import argparse
import asyncio
import codecs
import os
import signal
import socket
import ssl
import sys
import time

from peerlib import expect_echo, say


def make_ctx(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.ca:
        ctx.load_verify_locations(args.ca)
        ctx.check_hostname = bool(args.sni)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))
    return ctx


def describe(tls):
    cert = tls.getpeercert() or {}
    cn = "-"
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    return (f"tls: version={tls.version()} alpn={tls.selected_alpn_protocol() or '-'}"
            f" cipher={tls.cipher()[0]} subject={cn}")


def unescape(s):
    return codecs.escape_decode(s.encode())[0]


def half_close(args):
    """The request, then a FIN (after a close_notify with --notify-first) before any
    reply: Python's SSLSocket.shutdown would drop the TLS state, so the TLS runs over
    memory BIOs."""
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout,
                                    source_address=(args.bind, 0) if args.bind else None)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = make_ctx(args).wrap_bio(inc, out, server_hostname=args.sni or None)

    def feed():
        d = sock.recv(1 << 16)
        if d:
            inc.write(d)
        return bool(d)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            if not feed():
                raise EOFError("closed during the handshake")
    sock.sendall(out.read())
    say(describe(tls))
    tls.write(unescape(args.data))
    if args.notify_first:
        try:
            tls.unwrap()  # close_notify into `out`; its wait for the server's WantRead
        except ssl.SSLWantReadError:
            pass
    sock.sendall(out.read())
    sock.shutdown(socket.SHUT_WR)
    got, end = b"", None
    while not end:
        try:
            d = tls.read(1 << 16)
            if d:
                got += d
                continue
            end = "close_notify"  # read() answers b"" to a close_notify we have not sent
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            end = "close_notify"
        if not end and not feed():
            end = "fin"
    for line in got.decode("utf-8", "replace").splitlines():
        say(f"reply: {line}")
    say(f"eof {end}")
    return 0


def raw(args):
    ctx = make_ctx(args)
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout,
                                    source_address=(args.bind, 0) if args.bind else None)
    tls = ctx.wrap_socket(sock, server_hostname=args.sni or None)
    say(describe(tls))
    data = unescape(args.data)
    if data:
        tls.sendall(data)
    if args.hold or args.truncate:
        expect_echo(tls, data, args.timeout)
        if args.truncate:
            # SSLSocket.shutdown drops the TLS state without close_notify: a bare FIN.
            tls.shutdown(socket.SHUT_WR)
            while tls.recv(65536):
                pass
            say("eof truncated")
            return 0
        hold(tls, args.timeout)
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            say("timeout")
            return 0
        tls.settimeout(left)
        try:
            chunk = tls.recv(65536)
        except socket.timeout:
            say("timeout")
            return 0
        if not chunk:
            say("eof")
            return 0
        for line in chunk.decode("utf-8", "replace").splitlines():
            say(f"reply: {line}")


def hold(tls, timeout):
    signal.signal(signal.SIGTERM, lambda s, f: os._exit(0))
    # Blocked, so that a SIGUSR1 arriving between two sigtimedwait calls waits for the
    # next one instead of killing us; and blocked before the test may send it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    say("ready hold")
    n = 0
    while True:
        if signal.sigtimedwait([signal.SIGUSR1], 0.5) is None:
            continue
        n += 1
        msg = f"ping {n}\n".encode()
        try:
            tls.settimeout(timeout)
            tls.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = tls.recv(len(msg) - len(got))
                if not chunk:
                    raise EOFError("connection closed")
                got += chunk
            say(f"hold: ping {n} " + ("ok" if got == msg else f"FAILED got {got!r}"))
        except Exception as e:  # report, keep waiting for the next ping
            say(f"hold: ping {n} FAILED {e.__class__.__name__}: {e}")


async def ws(args):
    import websockets

    ctx = make_ctx(args)
    uri = f"wss://{args.sni or args.host}:{args.port}{args.ws}"
    async with websockets.connect(uri, ssl=ctx, host=args.host, port=args.port,
                                  server_hostname=args.sni or args.host,
                                  open_timeout=args.timeout, ping_interval=None) as w:
        tls = w.transport.get_extra_info("ssl_object")
        say(describe(tls))
        for i in range(args.count):
            msg = args.message if args.count == 1 else f"{args.message}-{i}"
            await w.send(msg)
            say(f"ws-reply: {await asyncio.wait_for(w.recv(), args.timeout)}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--sni")
    ap.add_argument("--ca")
    ap.add_argument("--alpn")
    ap.add_argument("--bind")
    ap.add_argument("--data", default="")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--truncate", action="store_true")
    ap.add_argument("--fin-first", action="store_true")
    ap.add_argument("--notify-first", action="store_true")
    ap.add_argument("--ws")
    ap.add_argument("--message", default="hello")
    ap.add_argument("--count", type=int, default=1)
    args = ap.parse_args()
    if args.hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    try:
        if args.ws:
            return asyncio.run(ws(args))
        return half_close(args) if args.fin_first or args.notify_first else raw(args)
    except Exception as e:
        print(f"tls_client: {e.__class__.__name__}: {e}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
