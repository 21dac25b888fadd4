#!/usr/bin/env python3
"""
oCenter's benchmarks: one command starts a production-like stack on 127.0.0.1, drives it from
a separate load process, prints the figures, writes bench/results/latest.json, and stops
everything it started.

    python3 dev.py bench            # full: 3 runs × 20 s of load, 100,000 allocations metered
    python3 dev.py bench --quick    # 1 run × 5 s, 10,000 allocations (a smoke run)
    python3 dev.py bench --floors   # what Django itself costs here: a constant view and SELECT 1, under each server

Stack, as in production: PostgreSQL (DATABASE_URL, or the local cluster started as in CI when
run as root), Redis (a private redis-server on a free port), gunicorn (gthread, --workers,
default 2, one per core; persistent database connections) for pages and the API, uvicorn for
/ws/ only, a Celery worker, and three simulated agents holding 10,000 GPUs (1,250 nodes × 8).
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
POOLS = [("bench-a", 417), ("bench-b", 417), ("bench-c", 416)]  # nodes of 8 GPUs: 10,000 in all


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, headers=None, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers or {}, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def database_url(started):
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database the bench may drop and fill")
    version = sorted(os.listdir("/usr/lib/postgresql"))[-1]
    status = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    if "online" not in status:
        subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True)
        started.append(["pg_ctlcluster", version, "main", "stop"])

    def admin(*args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], env=env, capture_output=True, text=True)

    if "1" not in admin("psql", "-tAc", "SELECT 1 FROM pg_roles WHERE rolname = 'app'").stdout:
        admin("psql", "-qc", "CREATE ROLE app LOGIN CREATEDB PASSWORD 'app'")
    admin("dropdb", "--if-exists", "--force", "ocenter_bench")
    admin("createdb", "-O", "app", "ocenter_bench")
    return "postgres://app:app@127.0.0.1:5432/ocenter_bench"


# Database connections: gunicorn's threads each keep theirs; an ASGI server's requests run on threads
# made as needed, so it takes them from a bounded pool (psycopg's) instead.
PERSISTENT = {"DB_CONN_MAX_AGE": "600"}
POOLED = {"DB_POOL_MAX": "40"}
PER_REQUEST = {"DB_CONN_MAX_AGE": "0"}


def server_command(kind, port, workers, threads=8):
    """Pages and the API under gunicorn with threads (WSGI), or everything under uvicorn (ASGI)."""
    if kind == "gunicorn":
        return [
            PY,
            "-m",
            "gunicorn",
            "ocenter.wsgi:application",
            "--worker-class",
            "gthread",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ]
    return [PY, "-m", "uvicorn", "ocenter.asgi:application", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--lifespan", "off", "--log-level", "warning"]  # fmt: skip


class Stack:
    """PostgreSQL, Redis, three agents with 10,000 GPUs, uvicorn and Celery on 127.0.0.1; stops what it started."""

    def __init__(self, workers, threads):
        self.workers, self.threads = workers, threads
        self.processes, self.stops = [], []
        self.work = Path(tempfile.mkdtemp(prefix="ocenter-bench-"))

    def spawn(self, cmd, env=None, log=None):
        out = open(self.work / f"{log}.log", "w") if log else subprocess.DEVNULL  # noqa: SIM115 (the process keeps it)
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self):
        db = database_url(self.stops)
        redis_port = free_port()
        self.spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"], log="redis")
        self.env = env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "ocenter.settings",
            "DATABASE_URL": db,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SECRET_KEY": "ocenter-bench-only-not-a-secret-0123456789abcdef",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "LOG_LEVEL": "WARNING",
            "OCENTER_EMBEDDED_JOBS": "0",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "SECURE_COOKIES": "0",
            "OCENTER_POOL_SYNC_SECONDS": "3600",
            "PYTHONUNBUFFERED": "1",
        }
        print(f"[bench] database {db.rsplit('@', 1)[-1]}, redis :{redis_port}, work dir {self.work}", flush=True)

        pools = []
        for name, nodes in POOLS:
            port, token = free_port(), "ocp_" + secrets.token_urlsafe(24)
            (self.work / f"{name}.toml").write_text(
                f'[agent]\npool = "{name}"\nbackend = "simulated"\n\n[[simulated.nodes]]\nname = "{name}-n{{n:04d}}"\n'
                f'count = {nodes}\ngpus = 8\nvendor = "NVIDIA"\nmodel = "A100-SXM4-80GB"\nmemory_mib = 81920\n'
            )
            self.spawn(
                [
                    PY,
                    "-m",
                    "pools.agent",
                    "--config",
                    str(self.work / f"{name}.toml"),
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--state",
                    str(self.work / f"{name}.sqlite3"),
                    "--log-level",
                    "WARNING",
                ],
                env={**os.environ, "OCENTER_AGENT_TOKEN": token},
                log=name,
            )
            pools.append({"name": name, "url": f"http://127.0.0.1:{port}", "token": token})
        for pool in pools:
            wait_http(f"{pool['url']}/v1/health", {"Authorization": f"Bearer {pool['token']}"})

        subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [PY, "bench/seed.py"], cwd=ROOT, env=env, input=json.dumps({"pools": pools, "tenants": 32}), capture_output=True, text=True
        )
        if seeded.returncode:
            raise SystemExit(f"seeding failed:\n{seeded.stderr[-3000:]}")
        self.seed = json.loads(seeded.stdout.strip().splitlines()[-1])
        print(f"[bench] {self.seed['gpus']} GPUs in {len(pools)} pools, {len(self.seed['tenants'])} tenants", flush=True)

        port, ws_port = free_port(), free_port()
        self.server = self.spawn(server_command("gunicorn", port, self.workers, self.threads), env={**env, **PERSISTENT}, log="gunicorn")
        # Websockets only (a proxy sends /ws/ here in production): one process, its database reads from a small pool.
        self.ws_server = self.spawn(server_command("uvicorn", ws_port, 1), env={**env, **POOLED}, log="uvicorn")
        self.worker = self.spawn(
            [PY, "-m", "celery", "-A", "ocenter", "worker", "--pool=solo", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=WARNING"],
            env={**env, **PERSISTENT},
            log="celery",
        )  # fmt: skip
        self.url, self.ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{ws_port}"
        wait_http(f"{self.url}/healthz")
        wait_http(f"http://127.0.0.1:{ws_port}/healthz")

    def stop_web(self):
        """Stop the server and the worker, and wait: what they still do would share the in-process figures' cores."""
        for process in (self.server, self.ws_server, self.worker):
            process.terminate()
        for process in (self.server, self.ws_server, self.worker):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for stop in self.stops:
            subprocess.run(stop)


# What a request costs below oCenter's own code: Django with every middleware, under each server.
FLOORS = [
    ("constant view", "uvicorn", "/floor/constant", POOLED),
    ("constant view", "gunicorn", "/floor/constant", PERSISTENT),
    ("SELECT 1 view, psycopg pool", "uvicorn", "/floor/select-1", POOLED),
    ("SELECT 1 view, a new connection per request", "uvicorn", "/floor/select-1", PER_REQUEST),
    ("SELECT 1 view, persistent connections", "gunicorn", "/floor/select-1", PERSISTENT),
    ("SELECT 1 view, a new connection per request", "gunicorn", "/floor/select-1", PER_REQUEST),
]


def cpu_seconds(pids) -> float:
    """User and system CPU of these processes and every descendant, living or ended (reaped), from /proc."""
    total, seen, todo = 0.0, set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def postgres_pids():
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "postgres"]


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def floors(workers, threads, rounds, seconds):
    """Each variant of FLOORS, interleaved ``rounds`` times: requests/s, and CPU per request in the server and in PostgreSQL."""
    stops = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.floor_settings",
        "DATABASE_URL": database_url(stops),
        "SECRET_KEY": "ocenter-bench-only-not-a-secret-0123456789abcdef",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "OCENTER_EMBEDDED_JOBS": "0",
        "SECURE_COOKIES": "0",
    }
    env.pop("REDIS_URL", None)
    results = {i: [] for i in range(len(FLOORS))}
    try:
        for _ in range(rounds):
            for i, (_, kind, path, connections) in enumerate(FLOORS):
                port = free_port()
                process = subprocess.Popen(server_command(kind, port, workers, threads), cwd=ROOT, env={**env, **connections},
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_http(url + path)
                    time.sleep(1)  # every worker up
                    server, database = cpu_seconds([process.pid]), cpu_seconds(postgres_pids())
                    load = subprocess.run([PY, "bench/load.py"], cwd=ROOT, capture_output=True, text=True, check=True,
                                          input=json.dumps({"url": url, "path": path, "clients": 32, "seconds": seconds}))  # fmt: skip
                    figures = json.loads(load.stdout)
                    requests = max(1, figures["requests"])
                    figures["server_cpu_ms"] = round((cpu_seconds([process.pid]) - server) * 1000 / requests, 2)
                    figures["postgres_cpu_ms"] = round((cpu_seconds(postgres_pids()) - database) * 1000 / requests, 2)
                    results[i].append(figures)
                finally:
                    process.terminate()
                    process.wait(20)
    finally:
        for stop in stops:
            subprocess.run(stop)
    rows = [{"variant": name, "server": kind, "runs": results[i]} for i, (name, kind, _, _) in enumerate(FLOORS)]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "floors.json").write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(),
                                                 "workers": workers, "threads": threads, "floors": rows}, indent=2))  # fmt: skip
    head = f"floor ({workers} server processes, 32 clients)"
    print(f"\n{head:<48} {'server':<9} {'requests/s':<22} {'server CPU/request':<24} PostgreSQL CPU/request")
    for row in rows:
        rate = _spread([r["per_second"] for r in row["runs"]], "{:.0f}")
        cpu = _spread([r["server_cpu_ms"] for r in row["runs"]], "{:.2f} ms")
        pg = _spread([r["postgres_cpu_ms"] for r in row["runs"]], "{:.2f} ms")
        print(f"{row['variant']:<48} {row['server']:<9} {rate:<22} {cpu:<24} {pg}")


def _spread(values, fmt):
    """The median, and the range when there are several."""
    middle = fmt.format(statistics.median(values))
    return middle if len(values) == 1 else f"{middle} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--floors", action="store_true", help="only the floors: a constant view and SELECT 1 under each server")
    parser.add_argument("--serve", action="store_true", help="start the stack, print how to reach it, wait for Ctrl-C (for profiling)")
    args = parser.parse_args()
    runs, seconds, metered = (1, 5, 10_000) if args.quick else (3, 20, 100_000)
    if args.floors:
        return floors(args.workers, args.threads, runs, seconds)

    with Stack(args.workers, args.threads) as stack:
        if args.serve:
            (stack.work / "seed.json").write_text(json.dumps({"url": stack.url, "ws_url": stack.ws_url, "tenants": stack.seed["tenants"]}))
            print(f"[bench] serving on {stack.url}; tenants and tokens in {stack.work / 'seed.json'}; Ctrl-C stops", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        print(
            f"[bench] load: {runs} × {seconds} s with 32 clients; half that rate, websocket events, then 100/s, {seconds} s each",
            flush=True,
        )
        load = subprocess.run(
            [PY, "bench/load.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            input=json.dumps(
                {
                    "url": stack.url,
                    "ws_url": stack.ws_url,
                    "tenants": stack.seed["tenants"],
                    "runs": runs,
                    "seconds": seconds,
                    "clients": 32,
                    "rate": 100,
                    "events": 200,
                }
            ),
        )
        if load.returncode:
            raise SystemExit(f"the load process failed:\n{load.stderr[-3000:]}\nserver log: {stack.work / 'uvicorn.log'}")
        http = json.loads(load.stdout)
        stack.stop_web()
        print(f"[bench] in-process: placement, metering {metered:,} running allocations, console overview", flush=True)
        inproc = subprocess.run([PY, "bench/inprocess.py", str(metered)], cwd=ROOT, env=stack.env, capture_output=True, text=True)
        if inproc.returncode:
            raise SystemExit(f"the in-process benchmarks failed:\n{inproc.stderr[-3000:]}")
        local = json.loads(inproc.stdout.strip().splitlines()[-1])

    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cores": os.cpu_count(),
        "workers": args.workers,
        "quick": args.quick,
        "http": http,
        **local,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / ("quick.json" if args.quick else "latest.json")).write_text(json.dumps(results, indent=2))
    report(results)


def ms(value):
    return "-" if value is None else f"{value:.1f} ms"


def report(r):
    t = r["http"]
    metering_runs = ", ".join(f"{x['seconds']} s / {x['records']:,} records" for x in r["metering"]["runs"][:3])
    rows = [
        (
            "allocate→running→release, 32 clients",
            f"{t['throughput_median']} /s (runs: {', '.join(str(x['per_second']) for x in t['throughput'])}; "
            f"errors {sum(x['errors'] for x in t['throughput'])})",
            "≥ 150/s (milestone 60/s)",
        ),
        (
            f"job arrays of {t['arrays']['members']}, {t['arrays']['clients']} clients",
            f"{t['arrays']['per_second']} allocations/s running (an array answered in p50 {ms(t['arrays']['answer']['p50_ms'])}; "
            f"errors {t['arrays']['errors']})",
            "≥ 500/s (milestone 250/s)",
        ),
        *(
            (
                f"request→running at {f['rate']}/s",
                f"p50 {ms(f['request_to_running']['p50_ms'])}, p99 {ms(f['request_to_running']['p99_ms'])} "
                f"({f['requests'] - f['errors']} of {f['requests']} running, {f['unfinished']} unfinished)",
                "p99 ≤ 50 ms",
            )
            for f in (t["fixed_rate"], t["sustainable_rate"])
        ),
        (
            f"placement, {r['placement']['gpus']:,} GPUs half full",
            f"p50 {r['placement']['p50_ms']:.2f} ms, p99 {r['placement']['p99_ms']:.2f} ms "
            f"(reading the view whole: p50 {r['placement']['read']['p50_ms']:.0f} ms; catching up, every 5 s per process: "
            f"p50 {r['placement']['catch_up']['p50_ms']:.0f} ms; pure function over every GPU: "
            f"p99 {r['placement']['full_scan']['p99_ms']:.1f} ms)",
            "p99 ≤ 1 ms",
        ),
        (
            "commit → websocket event",
            f"p50 {t['event_latency']['p50_ms']:.1f} ms, p99 {t['event_latency']['p99_ms']:.1f} ms ({t['event_latency']['events']} events)",
            "p99 ≤ 50 ms",
        ),
        (
            f"metering {r['metering']['running_allocations']:,} running (starts spread over the hour)",
            f"{r['metering']['median_seconds']} s a run (runs: "
            f"{metering_runs}); "
            f"every slice closing its hour in one run: {r['metering']['every_hour_at_once_seconds']} s; "
            f"{r['metering']['records_per_slice_day']} records a slice a day",
            "≤ 1 s; ≤ 26 rows a slice a day",
        ),
        *(
            (
                f"queue of {q['waiting']:,} waiting (10,000 GPUs, full)",
                f"positions {q['positions_ms']} ms; queued POST {q['post_queued_ms']} ms / {q['post_queued_queries']} queries; "
                f"list page {q['list_page_ms']} ms / {q['list_page_queries']} queries; event {q['event_ms']} ms; "
                f"drain, nothing fits {q['drain_nothing_fits_ms']} ms / {q['drain_queries']} queries; "
                f"drain, a GPU freed {q['drain_one_gpu_freed_ms']} ms",
                "≤ 100 ms; ≤ 50 ms; ≤ 50 ms; ≤ 50 ms; ≤ 100 ms; ≤ 1 s",
            )
            for q in r["queue"]
        ),
        (
            f"console overview ({r['overview']['gpus']:,} GPUs, {r['overview']['allocations']:,} allocations)",
            f"{r['overview']['median_ms']:.0f} ms, {r['overview']['queries']} queries",
            "≤ 150 ms, bounded queries",
        ),
        (
            f"issue 14's views ({r['overview']['gpus']:,} GPUs)",
            f"heatmap {r['console_views']['heatmap_ms']} ms / {r['console_views']['heatmap_queries']} queries "
            f"({r['console_views']['heatmap_bytes'] // 1024:,} KiB); queue {r['console_views']['queue_ms']} ms; "
            f"trends (7 days) {r['console_views']['trends_ms']} ms",
            "heatmap drawn < 1 s",
        ),
        (
            f"console overview as the ledger grows ({r['ledger']['records_before']:,} → +{r['ledger']['records_added']:,} records)",
            f"{r['ledger']['before_ms']:.0f} ms → {r['ledger']['after_ms']:.0f} ms, {r['ledger']['queries']} queries",
            "flat",
        ),
        (
            f"first page of a list with {r['long_lists']['rows']:,} rows",
            f"allocations (API) {r['long_lists']['allocations_api']} ms / {r['long_lists']['allocations_api_queries']} queries; "
            f"audit log: API {r['long_lists']['audit_api']} ms, console {r['long_lists']['audit_console']} ms",
            "≤ 50 ms",
        ),
        (
            f"a minute of metrics into the series ({r['sampling']['gpus']:,} GPUs, {r['sampling']['slices']:,} slices)",
            f"runs: {', '.join(f'{x} s' for x in r['sampling']['runs_seconds'])} (the first creates the hour's rows)",
            "well inside a minute",
        ),
    ]
    width = max(len(a) for a, _, _ in rows)
    print()
    for name, figure, target in rows:
        print(f"{name:<{width}}  {figure}   [{target}]")


if __name__ == "__main__":
    main()
