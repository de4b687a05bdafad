#!/usr/bin/env python3
"""Holds many idle keep-alive TLS connections open to one server (bench/idle-connections.sh).

Opens COUNT TLS connections to 127.0.0.1:PORT (at most CONCURRENCY handshakes at a time),
sends one HTTP/1.1 keep-alive request on each (so the server holds a connection that has
served a request, as an idle client's would be), then prints `open N` and waits for a line
on stdin. On that line it sends one more request on every connection (counting those the
server kept), closes them all and prints one JSON line with the counts. Everything is
bounded by --timeout seconds per step.

    idle_clients.py --port 18443 --count 10000 --ca ca.pem
"""

import argparse
import asyncio
import json
import ssl
import sys
import time

REQUEST = b"GET /idle HTTP/1.1\r\nhost: localhost\r\nuser-agent: bench-idle\r\n\r\n"


async def exchange(reader, writer):
    """One request and its whole response (Content-Length or chunked); the status code."""
    writer.write(REQUEST)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def open_one(port, context, gate, timeout):
    async with gate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
            timeout,
        )
        await asyncio.wait_for(exchange(reader, writer), timeout)
        return reader, writer


async def still_open(connection, timeout):
    try:
        await asyncio.wait_for(exchange(*connection), timeout)
        return True
    except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        return False


async def close(connection):
    writer = connection[1]
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--ca", required=True, help="CA certificate that signed the server's")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120, help="seconds per step")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["http/1.1"])
    gate = asyncio.Semaphore(args.concurrency)
    started = time.monotonic()
    tasks = [asyncio.ensure_future(open_one(args.port, context, gate, args.timeout)) for _ in range(args.count)]
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    connections = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    errors = sorted({repr(t.exception()) for t in done if t.exception() is not None})
    opened_in = time.monotonic() - started
    print(f"open {len(connections)}", flush=True)

    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    kept = await asyncio.gather(*(still_open(c, args.timeout) for c in connections))
    await asyncio.gather(*(close(c) for c in connections))
    print(json.dumps({
        "requested": args.count,
        "opened": len(connections),
        "open_seconds": round(opened_in, 1),
        "kept_open": sum(kept),
        "errors": errors[:5],
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
