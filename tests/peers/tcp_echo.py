#!/usr/bin/python3
"""TCP echo / sink backend. Logs one line per event on stdout:
`tcp:NAME open peer=IP:PORT`, `tcp:NAME proxy: v2 src=... dst=...`,
`tcp:NAME eof in=N in_sha256=HEX out=N` ...

usage: tcp_echo.py NAME PORT [--bind ADDR] [--mode MODE] [--blast-bytes N] [--proxy] [--hello]
                   [--fastopen] [--banner]
  --mode echo            echo everything; on client EOF flush, SHUT_WR, close (default)
  --mode hash            read to EOF, then send `bytes=N sha256=HEX\\n` and close
  --mode halfclose-first echo the first chunk, SHUT_WR at once, then keep reading to
                         EOF and log what arrived after our shutdown
  --mode slow            echo, but read at most 64 KiB/s (a slow backend)
  --mode blast           on the first bytes, send --blast-bytes of random data and close;
                         logs `tcp:NAME blast sent=N sha256=HEX` once all is out and closed
  --proxy                expect a PROXY v1/v2 header first; log it and send it back to
                         the client as the first line `proxy: ...\\n`
  --hello                send `tcp:NAME\\n` before the first echoed bytes
  --fastopen             accept TCP Fast Open (data in the SYN) on the listener
  --banner               send `tcp:NAME\\n` at once on accepting (a server that speaks first)"""

import argparse
import hashlib
import os
import socket
import threading
import time

from peerlib import exit_on_sigterm, fmt_addr, listen_socket, read_proxy_header, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--mode", default="echo",
                    choices=["echo", "hash", "halfclose-first", "slow", "blast"])
    ap.add_argument("--blast-bytes", type=int, default=4 << 20)
    ap.add_argument("--proxy", action="store_true")
    ap.add_argument("--hello", action="store_true")
    ap.add_argument("--fastopen", action="store_true")
    ap.add_argument("--banner", action="store_true")
    args = ap.parse_args()
    tag = f"tcp:{args.name}"

    def blast(conn):
        h = hashlib.sha256()
        left = args.blast_bytes
        while left:
            chunk = os.urandom(min(65536, left))
            h.update(chunk)
            conn.sendall(chunk)
            left -= len(chunk)
        conn.close()
        say(f"{tag} blast sent={args.blast_bytes} sha256={h.hexdigest()}")

    def serve(conn, peer):
        nin = nout = 0
        hin = hashlib.sha256()
        pending = b""
        with conn:
            say(f"{tag} open peer={fmt_addr(peer)}")
            try:
                if args.banner:
                    conn.sendall(f"{tag}\n".encode())
                if args.proxy:
                    text, pending = read_proxy_header(conn)
                    say(f"{tag} proxy: {text}")
                    conn.sendall(f"proxy: {text}\n".encode())
                first = True
                while True:
                    data = pending or conn.recv(65536)
                    pending = b""
                    if not data:
                        break
                    nin += len(data)
                    hin.update(data)
                    if args.mode == "hash":
                        continue
                    if args.mode == "blast":
                        blast(conn)
                        return
                    if first and args.hello:
                        conn.sendall(f"{tag}\n".encode())
                    conn.sendall(data)
                    nout += len(data)
                    if first and args.mode == "halfclose-first":
                        conn.shutdown(socket.SHUT_WR)
                        say(f"{tag} shut_wr after in={nin}")
                        after = 0
                        while True:
                            d = conn.recv(65536)
                            if not d:
                                break
                            after += len(d)
                        say(f"{tag} eof after-shutdown in={after}")
                        return
                    first = False
                    if args.mode == "slow":
                        time.sleep(len(data) / 65536)
                say(f"{tag} eof in={nin} in_sha256={hin.hexdigest()} out={nout}")
                if args.mode == "hash":
                    conn.sendall(f"bytes={nin} sha256={hin.hexdigest()}\n".encode())
                conn.shutdown(socket.SHUT_WR)
            except OSError as e:
                say(f"{tag} error {e.__class__.__name__} in={nin} out={nout}: {e}")
        say(f"{tag} closed peer={fmt_addr(peer)}")

    exit_on_sigterm()
    ls = listen_socket(args.bind, args.port)
    if args.fastopen:
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
    say(f"ready {tag} on {fmt_addr((args.bind, args.port))} mode={args.mode}")
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
