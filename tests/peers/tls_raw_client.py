#!/usr/bin/python3
"""Binary protocol through TLS with half-close, for terminate-and-forward tests.

usage: tls_raw_client.py HOST PORT --sni NAME --ca FILE --file BLOB [--alpn P]

Handshakes (verifying the certificate against --ca and --sni), sends BLOB, then
close_notify and FIN (its write side is done), and keeps reading until the server's
close_notify or EOF. Prints `sent=N sha256=HEX`, `got=N sha256=HEX`, `end=close_notify`
or `end=eof`. Exit status 0 unless the handshake or the socket failed."""

import argparse
import hashlib
import socket
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--sni", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--alpn")
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    blob = open(a.file, "rb").read()
    ctx = ssl.create_default_context(cafile=a.ca)
    if a.alpn:
        ctx.set_alpn_protocols(a.alpn.split(","))
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname=a.sni)
    sock = socket.create_connection((a.host, a.port), timeout=a.timeout)

    def flush():
        data = outg.read()
        if data:
            sock.sendall(data)

    def pump():
        data = sock.recv(65536)
        if not data:
            inc.write_eof()
            return False
        inc.write(data)
        return True

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            if not pump():
                sys.exit("tls_raw_client: EOF during the handshake")
    flush()
    got, end = bytearray(), "eof"
    # Send in pieces, reading whatever is echoed meanwhile (the socket buffers are finite).
    sock.setblocking(False)
    pos = 0
    import select

    while pos < len(blob) or outg.pending:
        if pos < len(blob):
            obj.write(blob[pos : pos + 16384])
            pos += 16384
        while outg.pending:
            r, w, _ = select.select([sock], [sock], [], a.timeout)
            if w:
                data = outg.read(65536)
                n = sock.send(data)
                if n < len(data):
                    # put back what did not go: MemoryBIO has no unread, so keep it here
                    rest = data[n:]
                    while rest:
                        select.select([], [sock], [], a.timeout)
                        rest = rest[sock.send(rest):]
            if r:
                data = sock.recv(65536)
                if data:
                    inc.write(data)
                    try:
                        while True:
                            got += obj.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        pass
    try:
        obj.unwrap()  # close_notify out; the peer's arrives later
    except ssl.SSLWantReadError:
        pass
    sock.setblocking(True)
    flush()
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(a.timeout)
    while True:
        try:
            got += obj.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            end = "close_notify"
            break
        except ssl.SSLError as e:  # EOF without close_notify
            end = "eof (%s)" % e.reason
            break
        if not pump():
            try:
                got += obj.read(65536)
            except ssl.SSLError:
                pass
            break
    print("alpn=%s" % obj.selected_alpn_protocol())
    print("sent=%d sha256=%s" % (len(blob), hashlib.sha256(blob).hexdigest()))
    print("got=%d sha256=%s" % (len(got), hashlib.sha256(got).hexdigest()))
    print("end=%s" % end)


if __name__ == "__main__":
    main()
