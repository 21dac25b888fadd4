"""The load process: drives oCenter over HTTP and websockets from outside the server, prints JSON figures."""

import asyncio
import json
import statistics
import sys
import time
from datetime import datetime

import httpx
import websockets


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(ms):
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


async def cycle(client, tenant, latencies, errors):
    try:
        await _cycle(client, tenant, latencies, errors)
    except httpx.HTTPError as exc:  # a timeout or a dropped connection is a failed cycle, not a failed bench
        errors.append(f"{exc.__class__.__name__}")


async def _cycle(client, tenant, latencies, errors):
    body = {"project": tenant["project"], "compute_units": 10, "memory_mib": 1024, "priority": "offline"}
    headers = {"Authorization": f"Bearer {tenant['token']}"}
    started = time.perf_counter()
    response = await client.post("/api/v1/allocations", json=body, headers=headers)
    if response.status_code != 201 or response.json()["state"] != "running":
        errors.append(f"{response.status_code} {response.text[:120]}")
        return
    latencies.append((time.perf_counter() - started) * 1000)
    released = await client.delete(f"/api/v1/allocations/{response.json()['id']}", headers=headers)
    if released.status_code != 200:
        errors.append(f"release {released.status_code}")


async def throughput(url, tenants, clients, seconds):
    """Closed loop: ``clients`` workers each allocate → running → release, as fast as they can."""
    latencies, errors, cycles = [], [], 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker(i):
            nonlocal cycles
            while time.perf_counter() < deadline:
                await cycle(client, tenants[i % len(tenants)], latencies, errors)
                cycles += 1
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "cycles": cycles, "per_second": round(cycles / elapsed, 1),
            "errors": len(errors), "first_errors": errors[:3], "request_to_running": summary(latencies)}


async def fixed_rate(url, tenants, rate, seconds):
    """Open loop: one request every 1/rate s whatever the answers; latency from request to running."""
    latencies, errors, tasks = [], [], []
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(cycle(client, tenants[i % len(tenants)], latencies, errors)))
        await asyncio.gather(*tasks)
    return {"rate": rate, "seconds": seconds, "errors": len(errors), "request_to_running": summary(latencies)}


async def event_latency(url, tenant, count):
    """Commit of a state change (the event's own time) to its arrival on a token-authenticated websocket."""
    ws_url = url.replace("http://", "ws://") + "/ws/events/"
    lags = []
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {tenant['token']}"}) as socket:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async def listen():
                async for message in socket:
                    event = json.loads(message)
                    if event.get("at"):
                        lags.append((time.time() - datetime.fromisoformat(event["at"]).timestamp()) * 1000)
            listener = asyncio.create_task(listen())
            for _ in range(count):
                await cycle(client, tenant, [], [])
            await asyncio.sleep(1)
            listener.cancel()
    return {"events": len(lags), **summary(lags)}


async def main():
    spec = json.loads(sys.stdin.read())
    url, tenants = spec["url"], spec["tenants"]
    results = {"throughput": [], "fixed_rate": None, "event_latency": None}
    for _ in range(spec["runs"]):
        results["throughput"].append(await throughput(url, tenants, spec["clients"], spec["seconds"]))
    results["fixed_rate"] = await fixed_rate(url, tenants, spec["rate"], spec["seconds"])
    results["event_latency"] = await event_latency(url, tenants[0], spec["events"])
    rates = [r["per_second"] for r in results["throughput"]]
    results["throughput_median"] = statistics.median(rates)
    print(json.dumps(results))


asyncio.run(main())
