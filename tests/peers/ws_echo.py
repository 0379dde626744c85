#!/usr/bin/python3
"""WebSocket echo backend (python3-websockets 10.4): replies to every message with
`ws:NAME echo=MESSAGE`; a plain (non-upgrade) HTTP request gets `ws-plain:NAME ...`.

usage: ws_echo.py NAME PORT [--bind ADDR]"""

import argparse
import asyncio
import http

import websockets

from peerlib import exit_on_sigterm, say


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()

    async def handler(ws, path):
        say(f"ws:{args.name} open path={path} peer={ws.remote_address[0]}:{ws.remote_address[1]}")
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    msg = msg.decode("utf-8", "replace")
                await ws.send(f"ws:{args.name} echo={msg}")
        except websockets.ConnectionClosed:
            pass
        say(f"ws:{args.name} closed path={path}")

    async def process_request(path, headers):
        if "upgrade" not in headers.get("Connection", "").lower():
            body = f"ws-plain:{args.name} path={path}\n".encode()
            return http.HTTPStatus.OK, [("Content-Type", "text/plain")], body
        return None

    async def run():
        async with websockets.serve(
            handler, args.bind, args.port, process_request=process_request
        ):
            say(f"ready ws:{args.name} on {args.bind}:{args.port}")
            await asyncio.Future()

    exit_on_sigterm()
    asyncio.run(run())


if __name__ == "__main__":
    main()
