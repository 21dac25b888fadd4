"""The load process: drives oCenter over HTTP and websockets from outside the server, prints JSON figures.

It speaks HTTP/1.1 itself over keep-alive connections (one per client): a general
client library costs more CPU per request than the server work it measures, and
the load shares the server's two cores.
"""

import asyncio
import json
import statistics
import sys
import time
from datetime import datetime
from urllib.parse import urlsplit

import uvloop
import websockets


class HTTPError(Exception):
    pass


class Response:
    def __init__(self, status_code: int, body: bytes):
        self.status_code = status_code
        self.text = body.decode(errors="replace")

    def json(self):
        return json.loads(self.text)


class Connection:
    """One keep-alive HTTP/1.1 connection: a request at a time, JSON in, status and body out."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, *, token: str | None = None, body=None) -> Response:
        payload = json.dumps(body).encode() if body is not None else b""
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile is opened again, once
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.writer.write(head + payload)
                return await asyncio.wait_for(self._response(), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                self.close()
                if attempt == 2:
                    raise HTTPError(exc.__class__.__name__) from exc

    async def _response(self) -> Response:
        status_line = await self.reader.readuntil(b"\r\n")
        length, close = 0, False
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await self.reader.readexactly(length)
        if close:
            self.close()
        return Response(int(status_line.split()[1]), body)

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def summary(ms):
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


async def cycle(connection, tenant, latencies, errors):
    """Allocate one slice, check it runs, release it; a dropped connection is a failed cycle, not a failed bench."""
    body = {"project": tenant["project"], "compute_units": 10, "memory_mib": 1024, "priority": "offline"}
    try:
        started = time.perf_counter()
        response = await connection.request("POST", "/api/v1/allocations", token=tenant["token"], body=body)
        if response.status_code != 201 or response.json()["state"] != "running":
            errors.append(f"{response.status_code} {response.text[:120]}")
            return
        latencies.append((time.perf_counter() - started) * 1000)
        released = await connection.request("DELETE", f"/api/v1/allocations/{response.json()['id']}", token=tenant["token"])
        if released.status_code != 200:
            errors.append(f"release {released.status_code}")
    except HTTPError as exc:
        errors.append(str(exc))


async def throughput(url, tenants, clients, seconds):
    """Closed loop: ``clients`` workers each allocate → running → release, as fast as they can."""
    latencies, errors, cycles = [], [], 0
    deadline = time.perf_counter() + seconds

    async def worker(i):
        nonlocal cycles
        connection = Connection(url)
        while time.perf_counter() < deadline:
            await cycle(connection, tenants[i % len(tenants)], latencies, errors)
            cycles += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "cycles": cycles,
        "per_second": round(cycles / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        "request_to_running": summary(latencies),
    }


async def fixed_rate(url, tenants, rate, seconds, grace=30):
    """Open loop: one request every 1/rate s whatever the answers; latency from request to running.

    Cycles still unfinished ``grace`` seconds after the last request count as errors (the stack fell behind).
    """
    latencies, errors, tasks, idle = [], [], [], []

    async def one(i):
        connection = idle.pop() if idle else Connection(url)
        await cycle(connection, tenants[i % len(tenants)], latencies, errors)
        idle.append(connection)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        task.cancel()
    for connection in idle:
        connection.close()
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": len(tasks),
        "errors": len(errors) + len(late),
        "unfinished": len(late),
        "request_to_running": summary(latencies),
    }


async def arrays(url, tenants, clients, seconds, members=50):
    """Closed loop: ``clients`` workers each ask for job arrays of ``members`` (10 units each) as fast as they can.

    The figure is members answered ``running`` per second. Releases are not in it: every member is released
    afterwards, one call each, outside the timing (the fleet has room for every member the run asks for).
    """
    running, errors, answers, made = 0, [], [], []
    deadline = time.perf_counter() + seconds

    async def worker(i):
        nonlocal running
        connection, tenant = Connection(url), tenants[i % len(tenants)]
        body = {"project": tenant["project"], "compute_units": 10, "memory_mib": 1024, "members": members}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await connection.request("POST", "/api/v1/allocations/array", token=tenant["token"], body=body)
            except HTTPError as exc:
                errors.append(str(exc))
                continue
            if response.status_code != 201:
                errors.append(f"{response.status_code} {response.text[:120]}")
                continue
            answers.append((time.perf_counter() - started) * 1000)
            answer = response.json()
            running += answer["counts"].get("running", 0)
            made.extend((tenant["token"], m["id"]) for m in answer["members"])
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    await _release_all(url, made)
    return {"clients": clients, "members": members, "seconds": round(elapsed, 1), "running": running,
            "per_second": round(running / elapsed, 1), "errors": len(errors), "first_errors": errors[:3],
            "answer": summary(answers)}  # fmt: skip


async def _release_all(url, made, clients=32):
    async def worker(share):
        connection = Connection(url)
        for token, allocation_id in share:
            await connection.request("DELETE", f"/api/v1/allocations/{allocation_id}", token=token)
        connection.close()

    await asyncio.gather(*(worker(made[i::clients]) for i in range(clients)))


async def gets(url, path, clients, seconds):
    """Closed loop: ``clients`` workers GET ``path`` as fast as they can (the floors: no token, no body)."""
    count, errors = 0, 0
    deadline = time.perf_counter() + seconds

    async def worker():
        nonlocal count, errors
        connection = Connection(url)
        while time.perf_counter() < deadline:
            try:
                response = await connection.request("GET", path)
                count, errors = count + 1, errors + (response.status_code != 200)
            except HTTPError:
                errors += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"requests": count, "errors": errors, "seconds": round(elapsed, 2), "per_second": round(count / elapsed, 1)}


async def event_latency(url, ws_url, tenant, count):
    """Commit of a state change (the event's own time) to its arrival on a token-authenticated websocket."""
    lags = []
    async with websockets.connect(f"{ws_url}/ws/events/", additional_headers={"Authorization": f"Bearer {tenant['token']}"}) as socket:

        async def listen():
            async for message in socket:
                event = json.loads(message)
                if event.get("at"):
                    lags.append((time.time() - datetime.fromisoformat(event["at"]).timestamp()) * 1000)

        listener = asyncio.create_task(listen())
        connection = Connection(url)
        for _ in range(count):
            await cycle(connection, tenant, [], [])
        connection.close()
        await asyncio.sleep(1)
        listener.cancel()
    return {"events": len(lags), **summary(lags)}


async def main():
    spec = json.loads(sys.stdin.read())
    if spec.get("path"):
        print(json.dumps(await gets(spec["url"], spec["path"], spec["clients"], spec["seconds"])))
        return
    url, tenants = spec["url"], spec["tenants"]
    results = {"throughput": [], "fixed_rate": None, "event_latency": None}
    for _ in range(spec["runs"]):
        results["throughput"].append(await throughput(url, tenants, spec["clients"], spec["seconds"]))
    # At half what the closed loop sustained (the latency of a stack that keeps up), events, and last the
    # target rate: work a stack that falls behind leaves in the server would slow whatever came after it.
    sustainable = max(1, int(statistics.median(r["per_second"] for r in results["throughput"]) / 2))
    results["sustainable_rate"] = await fixed_rate(url, tenants, sustainable, spec["seconds"])
    results["event_latency"] = await event_latency(url, spec["ws_url"], tenants[0], spec["events"])
    results["fixed_rate"] = await fixed_rate(url, tenants, spec["rate"], spec["seconds"])
    results["arrays"] = await arrays(url, tenants, 4, spec["seconds"])
    rates = [r["per_second"] for r in results["throughput"]]
    results["throughput_median"] = statistics.median(rates)
    print(json.dumps(results))


if __name__ == "__main__":
    uvloop.run(main())
