#!/usr/bin/env python3
"""Spoofed-source UDP flood for tests/integ/udp_spoof.sh (raw sockets: root in the test's
own network namespace).

flood PORT COUNT: sends COUNT STUN Binding requests (no USERNAME: the TURN side, which
    routes) to 127.0.0.1:PORT, each from a forged source address: the first quarter
    from one /24 (10.66.0.x), the rest from addresses spread over 10.0.0.0/8, each with
    a random source port. IP_HDRINCL: the kernel fills in the checksum and the length;
    the UDP checksum is 0 (none, allowed over IPv4). Prints `sent N`."""

import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from udp_flows import binding  # noqa: E402


def packet(src, sport, dst, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def flood(port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    port, count = int(port), int(count)
    sent = 0
    for i in range(count):
        if i < count // 4:
            src = "10.66.0.%d" % random.randint(1, 254)
        else:
            src = "10.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255), random.randint(1, 254))
        s.sendto(packet(src, random.randint(1024, 65535), "127.0.0.1", port, binding()), ("127.0.0.1", 0))
        sent += 1
    print("sent", sent, flush=True)


if __name__ == "__main__":
    flood(*sys.argv[2:4])
