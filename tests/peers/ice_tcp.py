#!/usr/bin/python3
"""ICE-TCP responder (RFC 6544 / RFC 4571 framing): reads 2-byte-length frames carrying
STUN; logs `ice:NAME binding username=SERVER:CLIENT peer=IP:PORT` for each Binding
request and answers with a framed Binding success response (same transaction id,
XOR-MAPPED-ADDRESS = the peer as seen, SOFTWARE = `ice:NAME`, FINGERPRINT).

usage: ice_tcp.py NAME PORT [--bind ADDR] [--ufrag U[,U...]]
  --ufrag  answer only Bindings whose server ufrag (before ':') is listed; others get
           a 401 error response (what a media worker does with an unknown ufrag)."""

import argparse
import struct
import threading

from peerlib import (
    exit_on_sigterm,
    fmt_addr,
    listen_socket,
    recv_exact,
    say,
    stun_attr,
    stun_attrs,
    stun_message,
    xor_mapped_address,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--ufrag", default="")
    args = ap.parse_args()
    allowed = {u for u in args.ufrag.split(",") if u}

    def serve(conn, peer):
        with conn:
            try:
                while True:
                    flen = struct.unpack("!H", recv_exact(conn, 2))[0]
                    frame = recv_exact(conn, flen)
                    if len(frame) < 20 or frame[4:8] != b"\x21\x12\xa4\x42":
                        say(f"ice:{args.name} non-stun frame len={flen} peer={fmt_addr(peer)}")
                        continue
                    mtype = struct.unpack("!H", frame[0:2])[0]
                    txid = frame[8:20]
                    user = ""
                    for t, v in stun_attrs(frame[20:]):
                        if t == 0x0006:
                            user = v.decode("utf-8", "replace")
                    if mtype != 0x0001:
                        say(f"ice:{args.name} stun type=0x{mtype:04x} peer={fmt_addr(peer)}")
                        continue
                    ufrag = user.split(":", 1)[0]
                    say(f"ice:{args.name} binding username={user} peer={fmt_addr(peer)}")
                    if allowed and ufrag not in allowed:
                        err = stun_attr(0x0009, struct.pack("!HBB", 0, 4, 1) + b"Unauthorized")
                        resp = stun_message(0x0111, txid, [err])
                    else:
                        resp = stun_message(
                            0x0101,
                            txid,
                            [
                                xor_mapped_address(peer[0], peer[1], txid),
                                stun_attr(0x8022, f"ice:{args.name}".encode()),
                            ],
                        )
                    conn.sendall(struct.pack("!H", len(resp)) + resp)
            except (EOFError, OSError):
                pass
        say(f"ice:{args.name} closed peer={fmt_addr(peer)}")

    exit_on_sigterm()
    ls = listen_socket(args.bind, args.port)
    say(f"ready ice:{args.name} on {fmt_addr((args.bind, args.port))}")
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
