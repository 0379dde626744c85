#!/usr/bin/python3
"""WebSocket client (python3-websockets 10.4): sends MESSAGE, prints the reply.

usage: ws_client.py URL MESSAGE [--hold]
  --hold  keep the connection open: print `ready` after the first reply; on each
          SIGUSR1 send MESSAGE again and print `hold: ping N ok` or `... FAILED`;
          exit 0 on SIGTERM."""

import argparse
import asyncio
import os
import signal
import sys

import websockets

from peerlib import say


async def run(args):
    async with websockets.connect(args.url, open_timeout=10, ping_interval=None) as ws:
        await ws.send(args.message)
        reply = await asyncio.wait_for(ws.recv(), 10)
        say(reply)
        if not args.hold:
            return 0
        loop = asyncio.get_running_loop()
        q = asyncio.Queue()
        loop.add_signal_handler(signal.SIGUSR1, q.put_nowait, "ping")
        loop.add_signal_handler(signal.SIGTERM, q.put_nowait, "stop")
        loop.add_signal_handler(signal.SIGINT, q.put_nowait, "stop")
        # Only now: the test sends SIGUSR1 as soon as it reads this line.
        say("ready hold")
        n = 0
        while True:
            what = await q.get()
            if what == "stop":
                os._exit(0)
            n += 1
            try:
                await ws.send(args.message)
                r = await asyncio.wait_for(ws.recv(), 10)
                ok = r == reply
                say(f"hold: ping {n} {'ok' if ok else 'FAILED got ' + r}")
            except Exception as e:  # report, keep waiting for the next ping
                say(f"hold: ping {n} FAILED {e.__class__.__name__}: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("message")
    ap.add_argument("--hold", action="store_true")
    args = ap.parse_args()
    try:
        return asyncio.run(run(args))
    except Exception as e:
        print(f"ws_client: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
