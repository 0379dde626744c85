#!/usr/bin/python3
"""A silent ICE-TCP server: accepts, reads RFC 4571 frames and never answers (a media
worker that drops Binding requests for ufrags it does not know). Logs
`ice:NAME silent accepted peer=IP:PORT`, `ice:NAME silent frame len=N username=U peer=...`
and `ice:NAME silent closed peer=...` when the other side goes away.

usage: ice_silent.py NAME PORT [--bind ADDR]"""

import argparse
import struct
import threading

from peerlib import exit_on_sigterm, fmt_addr, listen_socket, recv_exact, say, stun_attrs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()

    def serve(conn, peer):
        say(f"ice:{args.name} silent accepted peer={fmt_addr(peer)}")
        with conn:
            try:
                while True:
                    flen = struct.unpack("!H", recv_exact(conn, 2))[0]
                    frame = recv_exact(conn, flen)
                    user = ""
                    if len(frame) >= 20:
                        for t, v in stun_attrs(frame[20:]):
                            if t == 0x0006:
                                user = v.decode("utf-8", "replace")
                    say(f"ice:{args.name} silent frame len={flen} username={user} "
                        f"peer={fmt_addr(peer)}")
            except (EOFError, OSError):
                pass
        say(f"ice:{args.name} silent closed peer={fmt_addr(peer)}")

    exit_on_sigterm()
    ls = listen_socket(args.bind, args.port)
    say(f"ready ice:{args.name} silent on {fmt_addr((args.bind, args.port))}")
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
