#!/usr/bin/env python3
"""Sustained mixed load on a running `privgate demo` gateway (bench/load.sh).

Holds IDLE keep-alive TLS connections open (each has served one request) while WORKERS
clients, each on its own keep-alive connections, run a mix for DURATION seconds:

- read:      a teller (client certificate b) reads a customer, GET /customers/N (200)
- write:     the teller onboards a new customer, POST /customers (201)
- analytics: an analyst's DP query, POST /analytics/v1/query (200; repeats are cached, so
             the budget is spent once)
- fhe:       an aggregate's status, GET /fhe/v1/aggregates/ID (200), when the demo has FHE

Every 10 s it prints one JSON line: the gateway's resident memory (VmRSS of --pid), and per
kind the requests, p50 and p99 latency (ms) and unexpected answers of that window. At the
end it checks every idle connection is still open (one more request each) and prints a
summary line; it exits 1 on any unexpected answer or lost idle connection.
"""

import argparse
import asyncio
import json
import random
import ssl
import sys
import time

MIX = [("read", 60), ("write", 15), ("analytics", 15), ("fhe", 10)]
EXPECTED = {"read": {200}, "write": {201}, "analytics": {200}, "fhe": {200}}


def request(method, path, headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", "host: localhost"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(reader, writer, data):
    """Sends one request, reads its whole response (Content-Length or chunked); the status."""
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:size]
            if size == 0:
                break
    else:
        body = b""
    return status, body


async def connect(port, context):
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_kib(pid):
    """Resident memory split: anonymous (the heap, stacks: what the gateway allocates) and
    file-backed (the binary, libraries, SQLite's shared-memory index), from smaps_rollup."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    return {"rss_kib": fields.get("Rss", 0), "anon_kib": fields.get("Anonymous", 0)}


def slope_mib_per_min(samples, key):
    """Least-squares slope of samples[key] (KiB) against t_s, in MiB a minute."""
    n = len(samples)
    if n < 3:
        return None
    ts = [s["t_s"] for s in samples]
    vs = [s[key] / 1024 for s in samples]
    mt, mv = sum(ts) / n, sum(vs) / n
    var = sum((t - mt) ** 2 for t in ts)
    return round(sum((t - mt) * (v - mv) for t, v in zip(ts, vs)) / var * 60, 2)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 2)


class Window:
    def __init__(self):
        self.latency = {k: [] for k, _ in MIX}
        self.unexpected = {k: 0 for k, _ in MIX}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True, help="the demo directory (certs/, tokens/)")
    ap.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--fhe", action="store_true")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--max-slope", type=float, default=None,
                    help="fail if the resident set's slope over the run's second half exceeds "
                         "this many MiB a minute")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    plain = ssl.create_default_context(cafile=f"{a.dir}/certs/ca.pem")
    teller = ssl.create_default_context(cafile=f"{a.dir}/certs/ca.pem")
    teller.load_cert_chain(f"{a.dir}/certs/client-b.pem", f"{a.dir}/certs/client-b.key.pem")
    token = lambda name: open(f"{a.dir}/tokens/{name}.jwt").read().strip()
    analyst = ("authorization", f"Bearer {token('analyst')}")
    reporter = ("authorization", f"Bearer {token('reporting-analyst')}")
    kinds = [k for k, w in MIX if a.fhe or k != "fhe"]
    weights = [w for k, w in MIX if a.fhe or k != "fhe"]

    # The aggregate whose status the fhe requests read.
    aggregate = None
    if a.fhe:
        # The gateway loads its FHE key set after binding its listeners: until then the
        # FHE API answers 500 (no key set), so try for up to ten minutes.
        body = json.dumps({"name": "load", "bits": 16, "max_contributors": 100,
                           "min_organisations": 3, "open_for": "1day", "release": {"mode": "exact"}}).encode()
        deadline = time.monotonic() + 600
        while aggregate is None:
            r, w = await connect(a.port, plain)
            status, answer = await exchange(r, w, request("POST", "/fhe/v1/aggregates", [reporter], body))
            w.close()
            if status == 201:
                aggregate = json.loads(answer)["id"]
            elif status not in (404, 500, 503) or time.monotonic() > deadline:
                raise SystemExit(f"no aggregate: {status} {answer[:200]!r}")
            else:
                await asyncio.sleep(2)

    # Idle keep-alive connections, each having served one request.
    gate = asyncio.Semaphore(200)
    idle_req = request("GET", "/idle")

    async def open_idle():
        async with gate:
            r, w = await asyncio.wait_for(connect(a.port, plain), 60)
            await asyncio.wait_for(exchange(r, w, idle_req), 60)
            return r, w

    started = time.monotonic()
    idle = await asyncio.gather(*(open_idle() for _ in range(a.idle)))
    print(json.dumps({"idle_open": len(idle), "seconds": round(time.monotonic() - started, 1),
                      "rss_kib": rss_kib(a.pid)}), flush=True)

    window = Window()
    totals = {k: 0 for k in kinds}
    unexpected_total = {k: 0 for k in kinds}
    samples = []
    stop_at = time.monotonic() + a.duration
    next_id = [int(time.time()) % 10**6 * 10**4]

    def new_customer():
        next_id[0] += 1
        return json.dumps({"id": f"c-{next_id[0]}", "name": "Load Test", "email": "load@example.com",
                           "iban": "GB82WEST12345698765432", "card_number": "4000001234567899"}).encode()

    async def worker(n):
        conns = {}
        while time.monotonic() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            if kind == "read":
                ctx, data = teller, request("GET", f"/customers/{rng.randint(1, 2000)}")
            elif kind == "write":
                ctx, data = teller, request("POST", "/customers", body=new_customer())
            elif kind == "analytics":
                q = {"dataset": "transactions", "epsilon": 0.5,
                     "sql": "SELECT city, COUNT(*) FROM transactions GROUP BY city"}
                ctx, data = plain, request("POST", "/analytics/v1/query", [analyst], json.dumps(q).encode())
            else:
                ctx, data = plain, request("GET", f"/fhe/v1/aggregates/{aggregate}", [reporter])
            key = id(ctx)
            t0 = time.monotonic()
            try:
                if key not in conns:
                    conns[key] = await connect(a.port, ctx)
                status, _ = await asyncio.wait_for(exchange(*conns[key], data), 30)
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
                conns.pop(key, None)
                status = f"error: {type(e).__name__}"
            window.latency[kind].append(time.monotonic() - t0)
            totals[kind] += 1
            if status not in EXPECTED[kind]:
                window.unexpected[kind] += 1
                unexpected_total[kind] += 1
                if unexpected_total[kind] <= 5:
                    print(json.dumps({"unexpected": kind, "status": str(status)}), flush=True)

    async def reporter_task():
        nonlocal window
        t = 0
        while time.monotonic() < stop_at:
            await asyncio.sleep(a.every)
            t += a.every
            w, window = window, Window()
            line = {"t_s": t, **memory_kib(a.pid)}
            for k in kinds:
                line[k] = {"n": len(w.latency[k]), "p50_ms": percentile(w.latency[k], 0.5),
                           "p99_ms": percentile(w.latency[k], 0.99), "unexpected": w.unexpected[k]}
            samples.append(line)
            print(json.dumps(line), flush=True)

    await asyncio.gather(reporter_task(), *(worker(n) for n in range(a.workers)))

    async def still_open(conn):
        try:
            await asyncio.wait_for(exchange(*conn, idle_req), 60)
            return True
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            return False

    kept = sum(await asyncio.gather(*(still_open(c) for c in idle)))
    for _, w in idle:
        w.close()
    rss = [s["rss_kib"] for s in samples]
    # Flatness is judged on the second half: the first includes warm-up (caches, pools,
    # allocator arenas filling).
    half = samples[len(samples) // 2:]
    slope = slope_mib_per_min(half, "rss_kib")
    summary = {"summary": True, "idle": a.idle, "idle_kept": kept, "workers": a.workers,
               "duration_s": a.duration, "requests": totals, "unexpected": unexpected_total,
               "rss_kib_first": rss[0] if rss else None, "rss_kib_last": rss[-1] if rss else None,
               "rss_kib_max": max(rss) if rss else None,
               "rss_slope_second_half_mib_per_min": slope,
               "anon_slope_second_half_mib_per_min": slope_mib_per_min(half, "anon_kib"),
               "max_slope_mib_per_min": a.max_slope}
    print(json.dumps(summary), flush=True)
    growing = a.max_slope is not None and (slope is None or slope > a.max_slope)
    if growing:
        print(json.dumps({"memory_not_flat": True, "slope_mib_per_min": slope}), flush=True)
    return 0 if kept == a.idle and not any(unexpected_total.values()) and not growing else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
