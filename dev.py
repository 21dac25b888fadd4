#!/usr/bin/env python3
"""
oCenter's two everyday commands, needing nothing but Python 3.11+:

    python3 dev.py demo     # install, migrate, seed, run 3 simulated pools + oCenter on :8000
    python3 dev.py test     # run the whole test suite (extra arguments go to pytest)
    python3 dev.py agent bj-a100   # (re)start one demo agent by hand, e.g. after killing it
    python3 dev.py bench [--quick] # benchmarks on PostgreSQL + Redis (see bench/run.py, docs/BENCHMARKS.md)

Both build ``.venv`` from pyproject.toml first (again only when it changed).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
DEMO_DIR = ROOT / "var" / "demo"
DEMO_POOLS = [
    # name, region, config file; the port is in the config file
    ("bj-a100", "cn-beijing", "pools/agent/examples/bj-a100.toml", 9101),
    ("sh-h100", "cn-shanghai", "pools/agent/examples/sh-h100.toml", 9102),
    ("edge-910b", "edge-shenzhen", "pools/agent/examples/edge-910b.toml", 9103),
    # A cluster pool beside the hosts: its agent reads a recorded HAMi cluster from a stand-in API server (DEMO_CLUSTER_PORT).
    ("bj-k8s", "cn-beijing", "pools/agent/examples/bj-k8s.toml", 9104),
]
DEMO_CLUSTER_PORT = 9190


def say(message: str):
    print(f"[dev] {message}", flush=True)


def ensure_venv():
    """Create .venv and install the project with its test tools, when needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py is what tells an older Python so)
        sys.exit("oCenter needs Python 3.11 or newer.")
    if not PY.exists():
        say("creating .venv")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            sys.exit("python3 -m venv failed: on Debian/Ubuntu install the python3-venv package.")
    stamp = VENV / ".ocenter-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        say("installing dependencies into .venv (about a minute the first time)")
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"], check=True)
        stamp.write_text(digest)


def _demo_spec() -> dict:
    """The demo's secrets, made once and kept (mode 0600) under var/demo."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(DEMO_DIR, 0o700)
    path = DEMO_DIR / "spec.json"
    spec = json.loads(path.read_text()) if path.exists() else {"admin_password": secrets.token_urlsafe(9), "pools": []}
    known = {p["name"] for p in spec["pools"]}
    if known == {name for name, *_ in DEMO_POOLS} and "cluster_token" in spec:
        return spec
    spec["pools"] += [  # a pool added to the demo since the spec was made joins it
        {"name": name, "region": region, "agent_url": f"http://127.0.0.1:{port}", "token": f"ocp_{secrets.token_urlsafe(32)}"}
        for name, region, _, port in DEMO_POOLS
        if name not in known
    ]
    spec.setdefault("cluster_token", secrets.token_urlsafe(24))
    path.touch(mode=0o600)
    path.write_text(json.dumps(spec, indent=2))
    return spec


def _wait_until_up(url: str, process: subprocess.Popen, headers=None, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited (code {process.returncode}); see its output above")
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"the agent at {url} did not answer within {timeout:.0f} s")


def _demo_env() -> dict:
    return {**os.environ, "DEBUG": os.environ.get("DEBUG", "1"), "PYTHONUNBUFFERED": "1"}


def _start_cluster(spec: dict, env: dict) -> subprocess.Popen:
    """The demo's Kubernetes API server: a recorded HAMi cluster (tests/kubernetes_api.py), and a kubeconfig for bj-k8s's agent."""
    url = f"http://127.0.0.1:{DEMO_CLUSTER_PORT}"
    (DEMO_DIR / "kubeconfig").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "demo",
        "clusters": [{"name": "demo", "cluster": {"server": url}}], "users": [{"name": "agent", "user": {"token": spec["cluster_token"]}}],
        "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": "agent"}}],
    }))  # fmt: skip
    cluster = subprocess.Popen(
        [str(PY), "-m", "tests.kubernetes_api", "--objects", "tests/fixtures/kubernetes/hami-cluster.json",
         "--token", spec["cluster_token"], "--port", str(DEMO_CLUSTER_PORT)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_until_up(f"{url}/metrics", cluster)
    return cluster


def _agent_command(name: str, config: str) -> list[str]:
    return [str(PY), "-m", "pools.agent", "--config", config, "--state", str(DEMO_DIR / f"{name}-claims.sqlite3")]


def agent(args):
    """Run one demo agent in the foreground (the demo must have run once)."""
    ensure_venv()
    spec = _demo_spec()
    known = {name: config for name, _, config, _ in DEMO_POOLS}
    if len(args) != 1 or args[0] not in known:
        sys.exit(f"usage: python3 dev.py agent {{{','.join(known)}}}")
    token = next(p["token"] for p in spec["pools"] if p["name"] == args[0])
    env = {**_demo_env(), "OCENTER_AGENT_TOKEN": token}
    os.execve(str(PY), _agent_command(args[0], known[args[0]]), env)


def demo(args):
    ensure_venv()
    spec = _demo_spec()
    env = _demo_env()
    port = args[0] if args else "8000"
    processes: list[subprocess.Popen] = []

    def stop(*_):
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 8
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        say("stopped oCenter and the pool agents")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        subprocess.run([str(PY), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        processes.append(_start_cluster(spec, env))
        pools = {p["name"]: p for p in spec["pools"]}
        for name, _, config, _ in DEMO_POOLS:
            pool = pools[name]
            agent = subprocess.Popen(
                _agent_command(name, config),
                cwd=ROOT,
                env={**env, "OCENTER_AGENT_TOKEN": pool["token"]},
            )
            processes.append(agent)
            _wait_until_up(f"{pool['agent_url']}/v1/health", agent, {"Authorization": f"Bearer {pool['token']}"})
        subprocess.run([str(PY), "manage.py", "seed_demo", str(DEMO_DIR / "spec.json")], cwd=ROOT, env=env, check=True)
        server = subprocess.Popen(
            [
                str(PY),
                "-m",
                "uvicorn",
                "ocenter.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--lifespan",
                "on",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
        )
        processes.append(server)
        _wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        print(
            f"\n  oCenter is running at http://127.0.0.1:{port}/\n"
            f"  log in as admin / {spec['admin_password']}  (console)\n"
            f"  or alice (acme) / bob (globex), same password  (tenant portal)\n"
            f"  three simulated hosts' pools and a Kubernetes cluster's: {', '.join(p['name'] for p in spec['pools'])}\n"
            f"  Ctrl-C stops everything.\n",
            flush=True,
        )
        # An agent that stops is a pool going down: oCenter shows it, and the
        # demo goes on. `python3 dev.py agent NAME` brings it back.
        agents = dict(zip((name for name, *_ in DEMO_POOLS), processes[1:]))
        while server.poll() is None:
            for name, process in list(agents.items()):
                if process.poll() is not None:
                    say(f"agent {name} exited ({process.returncode}); restart it with: python3 dev.py agent {name}")
                    del agents[name]
            time.sleep(0.5)
        say(f"oCenter exited with code {server.returncode}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


def test(args):
    ensure_venv()
    os.chdir(ROOT)
    os.execv(str(PY), [str(PY), "-m", "pytest", *args])


def bench(args):
    ensure_venv()
    os.chdir(ROOT)
    os.execv(str(PY), [str(PY), "bench/run.py", *args])


def main():
    commands = {"demo": demo, "test": test, "agent": agent, "bench": bench}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))


if __name__ == "__main__":
    main()
