#!/usr/bin/python3
"""An ICE-TCP server that closes every connection at once, before reading anything (a
media worker that crashed or refuses the client). Logs
`ice:NAME closer accepted-and-closed peer=IP:PORT` for each.

usage: ice_closer.py NAME PORT [--bind ADDR]"""

import argparse

from peerlib import exit_on_sigterm, fmt_addr, listen_socket, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()
    exit_on_sigterm()
    ls = listen_socket(args.bind, args.port)
    say(f"ready ice:{args.name} closer on {fmt_addr((args.bind, args.port))}")
    while True:
        conn, peer = ls.accept()
        conn.close()
        say(f"ice:{args.name} closer accepted-and-closed peer={fmt_addr(peer)}")


if __name__ == "__main__":
    main()
