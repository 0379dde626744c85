#!/usr/bin/python3
"""HTTP backend for mux443 tests: answers every request with a body naming itself,
`web:NAME method=GET path=/x host=h proxy=...`, then closes (HTTP/1.0).

usage: http_server.py NAME PORT [--bind ADDR] [--proxy]
  --proxy  expect a PROXY v1/v2 header first (what mux443 sends with proxy_protocol);
           the body then reports it as proxy="v1 src=IP:PORT dst=IP:PORT"."""

import argparse
import http.server
import socketserver

from peerlib import exit_on_sigterm, family_of, fmt_addr, read_proxy_header, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--proxy", action="store_true")
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "mux443-test-web"
        proxy_text = "-"

        def setup(self):
            if args.proxy:
                text, leftover = read_proxy_header(self.request)
                self.proxy_text = text
                if leftover:  # no header: answer 400 on whatever came
                    self.proxy_text = "missing"
            super().setup()

        def answer(self):
            host = self.headers.get("Host", "-")
            body = (
                f"web:{args.name} method={self.command} path={self.path} host={host}"
                f' proxy="{self.proxy_text}" peer={fmt_addr(self.client_address)}\n'
            ).encode()
            n = int(self.headers.get("Content-Length", "0") or 0)
            if n:
                self.rfile.read(n)
            code = 400 if self.proxy_text == "missing" else 200
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            say(body.decode().rstrip())

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_OPTIONS = answer

        def log_message(self, fmt, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        address_family = family_of(args.bind)

    exit_on_sigterm()
    srv = Server((args.bind, args.port), Handler)
    say(f"ready web:{args.name} on {fmt_addr((args.bind, args.port))}")
    srv.serve_forever()


if __name__ == "__main__":
    main()
