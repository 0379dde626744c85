"""Shared helpers for mux443's test peers: readiness line, SIGTERM, addresses,
PROXY protocol v1/v2 parsing and building, STUN / RFC 4571 helpers.

Every peer prints `ready` on stdout once it listens and exits 0 on SIGTERM."""

import hashlib
import hmac
import ipaddress
import os
import signal
import socket
import struct
import sys
import zlib

STUN_COOKIE = 0x2112A442
PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def say(*args):
    """Prints one line on stdout and flushes (the tests poll our log files)."""
    print(*args, flush=True)


def exit_on_sigterm():
    def handler(signum, frame):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def split_hostport(s):
    """'127.0.0.1:80' / '[::1]:80' -> (host, port)."""
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


def fmt_addr(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_socket(host, port, backlog=128):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(host) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


# ---------------------------------------------------------------- PROXY protocol


def read_proxy_header(sock):
    """Reads a PROXY v1 or v2 header from sock. Returns (text, leftover_bytes) where text
    is `v1 src=IP:PORT dst=IP:PORT` / `v2 src=... dst=...` / `v2 LOCAL` / `v1 UNKNOWN`
    or `none` (leftover then holds the bytes read), `bad: ...` on a broken header."""
    first = b""
    while len(first) < 12:
        chunk = sock.recv(12 - len(first))
        if not chunk:
            return ("none (eof)", first)
        first += chunk
        if not PROXY_V2_SIG.startswith(first[: len(PROXY_V2_SIG)]) and not b"PROXY ".startswith(
            first[:6]
        ):
            return ("none", first)
    if first == PROXY_V2_SIG:
        hdr = recv_exact(sock, 4)
        ver_cmd, fam, length = hdr[0], hdr[1], struct.unpack("!H", hdr[2:4])[0]
        body = recv_exact(sock, length)
        if ver_cmd >> 4 != 2:
            return (f"bad: v2 version {ver_cmd >> 4}", b"")
        if ver_cmd & 0xF == 0:
            return ("v2 LOCAL", b"")
        if fam == 0x11 and length >= 12:
            src = socket.inet_ntop(socket.AF_INET, body[0:4])
            dst = socket.inet_ntop(socket.AF_INET, body[4:8])
            sp, dp = struct.unpack("!HH", body[8:12])
            return (f"v2 src={src}:{sp} dst={dst}:{dp}", b"")
        if fam == 0x21 and length >= 36:
            src = socket.inet_ntop(socket.AF_INET6, body[0:16])
            dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
            sp, dp = struct.unpack("!HH", body[32:36])
            return (f"v2 src=[{src}]:{sp} dst=[{dst}]:{dp}", b"")
        return (f"v2 family=0x{fam:02x} len={length}", b"")
    if first.startswith(b"PROXY "):
        line = first
        while not line.endswith(b"\r\n"):
            if len(line) > 107:
                return ("bad: v1 line too long", b"")
            c = sock.recv(1)
            if not c:
                return ("bad: v1 eof", b"")
            line += c
        parts = line[:-2].decode("ascii", "replace").split(" ")
        if len(parts) >= 2 and parts[1] == "UNKNOWN":
            return ("v1 UNKNOWN", b"")
        if len(parts) != 6:
            return (f"bad: v1 {line!r}", b"")
        _, proto, src, dst, sp, dp = parts
        if proto == "TCP6":
            return (f"v1 src=[{src}]:{sp} dst=[{dst}]:{dp}", b"")
        return (f"v1 src={src}:{sp} dst={dst}:{dp}", b"")
    return ("none", first)


def build_proxy_header(version, src, dst):
    """src/dst: (host, port). Returns the bytes of a PROXY v1/v2 header."""
    ip_src, ip_dst = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    v6 = ip_src.version == 6
    if version == 1:
        proto = "TCP6" if v6 else "TCP4"
        return f"PROXY {proto} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()
    if v6:
        body = ip_src.packed + ip_dst.packed + struct.pack("!HH", src[1], dst[1])
        fam = 0x21
    else:
        body = ip_src.packed + ip_dst.packed + struct.pack("!HH", src[1], dst[1])
        fam = 0x11
    return PROXY_V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


# ---------------------------------------------------------------- STUN


def stun_attrs(body):
    """Yields (type, value) for the attributes of a STUN message body."""
    off = 0
    while off + 4 <= len(body):
        t, ln = struct.unpack("!HH", body[off : off + 4])
        yield t, body[off + 4 : off + 4 + ln]
        off += 4 + ln + ((4 - ln % 4) % 4)


def stun_attr(t, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", t, len(value)) + value + b"\0" * pad


def xor_mapped_address(host, port, txid):
    ip = ipaddress.ip_address(host)
    xport = port ^ (STUN_COOKIE >> 16)
    if ip.version == 4:
        xaddr = struct.unpack("!I", ip.packed)[0] ^ STUN_COOKIE
        return stun_attr(0x0020, struct.pack("!BBHI", 0, 1, xport, xaddr))
    key = struct.pack("!I", STUN_COOKIE) + txid
    xaddr = bytes(a ^ b for a, b in zip(ip.packed, key))
    return stun_attr(0x0020, struct.pack("!BBH", 0, 2, xport) + xaddr)


def decode_xor_mapped(value, txid):
    fam, xport = value[1], struct.unpack("!H", value[2:4])[0]
    port = xport ^ (STUN_COOKIE >> 16)
    if fam == 1:
        addr = struct.unpack("!I", value[4:8])[0] ^ STUN_COOKIE
        return str(ipaddress.ip_address(addr)), port
    key = struct.pack("!I", STUN_COOKIE) + txid
    return str(ipaddress.ip_address(bytes(a ^ b for a, b in zip(value[4:20], key)))), port


def ice_binding(user, integrity=True, txid=None, password=b"mux443-test-ice-pwd"):
    """An RFC 4571-framed ICE connectivity check: Binding request with USERNAME = user,
    PRIORITY, MESSAGE-INTEGRITY (HMAC-SHA1 with `password`, RFC 8489 section 14.5) when
    asked, and FINGERPRINT; as a browser sends it."""
    txid = txid or os.urandom(12)
    attrs = [
        stun_attr(0x0006, user.encode()),
        stun_attr(0x0024, struct.pack("!I", 0x6E001EFF)),  # PRIORITY
    ]
    if integrity:
        body = b"".join(attrs)
        hdr = struct.pack("!HHI", 0x0001, len(body) + 24, STUN_COOKIE) + txid
        attrs.append(stun_attr(0x0008, hmac.new(password, hdr + body, hashlib.sha1).digest()))
    msg = stun_message(0x0001, txid, attrs)
    return struct.pack("!H", len(msg)) + msg


def stun_message(mtype, txid, attrs, fingerprint=True):
    """Builds a STUN message; appends FINGERPRINT when asked."""
    body = b"".join(attrs)
    if fingerprint:
        hdr = struct.pack("!HHI", mtype, len(body) + 8, STUN_COOKIE) + txid
        crc = (zlib.crc32(hdr + body) & 0xFFFFFFFF) ^ 0x5354554E
        body += stun_attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", mtype, len(body), STUN_COOKIE) + txid + body
