#!/usr/bin/python3
"""Raw TCP client for mux443 tests: sends bytes (a file, e.g. a captured vector, or a
string), optionally behind a PROXY header, slowly, half-closed or cut short, and
prints what comes back on stdout. A status line goes to stderr:
`client: sent=N recv=M end=eof|timeout|reset|closed-while-sending|cut t=SECONDS`.

usage: client.py HOST PORT [options]
  --bind IP            local address to connect from (e.g. 127.0.0.2)
  --file F | --data S  payload (S takes Python escapes: \\r\\n, \\x00)
  --ice-binding USER   payload += an RFC 4571-framed STUN Binding request with
                       USERNAME = USER (e.g. `srvufrag:cliufrag`) and MESSAGE-INTEGRITY,
                       as ICE-TCP sends (--no-integrity: without MESSAGE-INTEGRITY)
  --proxy v1|v2        send a PROXY header first (--proxy-src IP:PORT, --proxy-dst)
  --delay SEC          stay silent SEC seconds after connecting, then send
  --slow SEC           send the payload one byte every SEC seconds
  --split N[,N...]     send the payload in pieces cut at these offsets, 0.1 s apart
                       (forces separate TCP segments, like a real network)
  --close-after N      send only the first N bytes of the payload, then close
  --shut-wr            shutdown(SHUT_WR) after sending (half-close)
  --timeout S          give up reading after S seconds without EOF (default 5)
  --frame              read one RFC 4571 frame, decode the STUN message in it
  --hex                print the received bytes as hex
  --hold               keep the connection: print `ready` after the first echo,
                       re-send and check the echo on each SIGUSR1
                       (`hold: ping N ok` / `hold: ping N FAILED ...`), exit on SIGTERM"""

import argparse
import codecs
import os
import select
import signal
import socket
import struct
import sys
import time

from peerlib import (
    build_proxy_header,
    decode_xor_mapped,
    family_of,
    ice_binding,
    recv_exact,
    say,
    split_hostport,
    stun_attrs,
)


LOCAL = "-"


def status(**kw):
    kw["local"] = LOCAL
    print("client: " + " ".join(f"{k}={v}" for k, v in kw.items()), file=sys.stderr, flush=True)


def read_until(sock, want, deadline):
    got = b""
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {got!r}")
        r, _, _ = select.select([sock], [], [], left)
        if r:
            d = sock.recv(65536)
            if not d:
                raise EOFError(f"EOF, got {got!r}")
            got += d
    return got


def hold(sock, payload):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    sock.sendall(payload)
    read_until(sock, payload, time.monotonic() + 10)
    say("ready hold")
    n = 0
    while True:
        sig = signal.sigwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
        if sig != signal.SIGUSR1:
            os._exit(0)
        n += 1
        try:
            sock.sendall(payload)
            read_until(sock, payload, time.monotonic() + 10)
            say(f"hold: ping {n} ok")
        except (OSError, EOFError, TimeoutError) as e:
            say(f"hold: ping {n} FAILED {e.__class__.__name__}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind")
    ap.add_argument("--file")
    ap.add_argument("--data")
    ap.add_argument("--ice-binding")
    ap.add_argument("--no-integrity", action="store_true")
    ap.add_argument("--proxy", choices=["v1", "v2"])
    ap.add_argument("--proxy-src", default="192.0.2.7:1234")
    ap.add_argument("--proxy-dst")
    ap.add_argument("--delay", type=float)
    ap.add_argument("--slow", type=float)
    ap.add_argument("--split", default="")
    ap.add_argument("--close-after", type=int)
    ap.add_argument("--shut-wr", action="store_true")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--frame", action="store_true")
    ap.add_argument("--hex", action="store_true")
    ap.add_argument("--hold", action="store_true")
    args = ap.parse_args()

    payload = b""
    if args.file:
        with open(args.file, "rb") as f:
            payload = f.read()
    if args.data is not None:
        payload += codecs.escape_decode(args.data.encode())[0]
    if args.ice_binding:
        payload += ice_binding(args.ice_binding, integrity=not args.no_integrity)

    t0 = time.monotonic()
    sock = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    if args.bind:
        sock.bind((args.bind, 0))
    sock.settimeout(10)
    try:
        sock.connect((args.host, args.port))
    except OSError as e:
        status(sent=0, recv=0, end=f"connect-failed:{e.__class__.__name__}", t=0)
        return 3
    sock.settimeout(None)
    global LOCAL
    LOCAL = "%s:%d" % sock.getsockname()[:2]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    if args.proxy:
        src = split_hostport(args.proxy_src)
        dst = split_hostport(args.proxy_dst) if args.proxy_dst else (args.host, args.port)
        sock.sendall(build_proxy_header(1 if args.proxy == "v1" else 2, src, dst))

    if args.hold:
        hold(sock, payload)
        return 0

    if args.close_after is not None:
        payload = payload[: args.close_after]

    got = b""
    sent = 0
    end = None
    if args.delay:
        r, _, _ = select.select([sock], [], [], args.delay)
        if r and not sock.recv(1, socket.MSG_PEEK):
            end = "closed-while-silent"
    try:
        if end:
            pass
        elif args.slow:
            for i in range(len(payload)):
                sock.sendall(payload[i : i + 1])
                sent += 1
                r, _, _ = select.select([sock], [], [], args.slow)
                if r:
                    d = sock.recv(65536)
                    if not d:
                        end = "closed-while-sending"
                        break
                    got += d
        elif args.split:
            cuts = [int(c) for c in args.split.split(",")] + [len(payload)]
            prev = 0
            for c in cuts:
                if prev:
                    time.sleep(0.1)
                sock.sendall(payload[prev:c])
                prev = c
            sent = len(payload)
        else:
            sock.sendall(payload)
            sent = len(payload)
    except (BrokenPipeError, ConnectionResetError):
        end = "closed-while-sending"

    if end is None and args.close_after is not None:
        sock.close()
        status(sent=sent, recv=0, end="cut", t=f"{time.monotonic() - t0:.2f}")
        return 0

    if end is None and args.shut_wr:
        sock.shutdown(socket.SHUT_WR)

    if end is None and args.frame:
        sock.settimeout(args.timeout)
        try:
            flen = struct.unpack("!H", recv_exact(sock, 2))[0]
            frame = recv_exact(sock, flen)
        except (EOFError, OSError) as e:
            status(sent=sent, recv=0, end=f"no-frame:{e}", t=f"{time.monotonic() - t0:.2f}")
            return 1
        mtype = struct.unpack("!H", frame[0:2])[0]
        txid = frame[8:20]
        out = [f"frame len={flen} type=0x{mtype:04x} txid={txid.hex()}"]
        sent_txid = payload[10:22]  # 2-byte frame length, then the STUN header
        out.append("txid-match=" + ("yes" if sent_txid == txid else "no"))
        for t, v in stun_attrs(frame[20:]):
            if t == 0x0020:
                out.append("xor-mapped=%s:%d" % decode_xor_mapped(v, txid))
            elif t == 0x8022:
                out.append("software=" + v.decode("utf-8", "replace"))
            elif t == 0x0009:
                out.append(f"error={v[2] * 100 + v[3]}")
        say(" ".join(out))
        status(sent=sent, recv=flen + 2, end="frame", t=f"{time.monotonic() - t0:.2f}")
        return 0

    if end is None:
        deadline = time.monotonic() + args.timeout
        end = "timeout"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                break
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            if not d:
                end = "eof"
                break
            got += d
    if args.hex:
        sys.stdout.write(got.hex() + "\n")
    else:
        sys.stdout.buffer.write(got)
    sys.stdout.flush()
    status(sent=sent, recv=len(got), end=end, t=f"{time.monotonic() - t0:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
