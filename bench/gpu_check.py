#!/usr/bin/env python3
"""
The nvml backend on a real NVIDIA GPU, end to end, in under 3 minutes.

    python3 bench/gpu_check.py [--enforcement mps|hami-core|exclusive] [--gpu 0]

Needs one NVIDIA GPU, its driver, PyTorch with CUDA and nvidia-ml-py (for MPS:
nvidia-cuda-mps-control, started by the agent when none answers; run as root,
or as the user whose processes it must see). It starts a pool agent with the
nvml backend, claims 25 units and 8 GiB on the GPU, runs a PyTorch process
under the environment the claim returns that allocates 6 GiB (must work) and
then 12 GiB (must fail where a slice's memory is enforced: mps, hami-core),
runs a matmul loop and reads the claim's utilization above zero from
/v1/metrics, releases the claim, and prints every figure and one PASS/FAIL
line per step. Exit status 0 when every step passed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS: list[tuple[str, bool, str]] = []

CHILD = r"""
import sys, time, torch
assert torch.cuda.is_available(), "CUDA is not available to PyTorch"
step = sys.argv[1]
if step == "alloc":
    gib = int(sys.argv[2])
    try:
        block = torch.empty(gib * 2**30, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        print(f"allocated {gib} GiB", flush=True)
    except RuntimeError as exc:
        print(f"refused {gib} GiB: {str(exc).splitlines()[0]}", flush=True)
        sys.exit(3)
elif step == "matmul":
    a = torch.randn(4096, 4096, device="cuda")
    deadline = time.monotonic() + float(sys.argv[2])
    n = 0
    while time.monotonic() < deadline:
        a = (a @ a).clamp_(-1, 1)
        n += 1
    torch.cuda.synchronize()
    print(f"{n} matmuls", flush=True)
"""


def say(name: str, ok: bool, detail: str = ""):
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}{': ' + detail if detail else ''}", flush=True)


def call(base: str, token: str, method: str, path: str, body=None) -> tuple[int, dict]:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def start_agent(work: Path, enforcement: str, token: str) -> tuple[subprocess.Popen, str]:
    config = work / "gpu-check.toml"
    config.write_text(
        f'[agent]\npool = "gpu-check"\nbackend = "nvml"\n\n[nvml]\nenforcement = "{enforcement}"\nstart_mps_daemon = true\n'
        f'mps_pipe_directory = "{work / "mps-pipe"}"\nmps_log_directory = "{work / "mps-log"}"\nhealth_seconds = 2\n'
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "pools.agent", "--config", str(config), "--state", str(work / "claims.sqlite3"), "--listen", "127.0.0.1:0"],
        cwd=ROOT, env={**os.environ, "OCENTER_AGENT_TOKEN": token, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = agent.stdout.readline()
        if not line:
            break
        print(f"  agent: {line.rstrip()}")
        if "listening on http://" in line:
            return agent, line.rsplit("listening on ", 1)[1].strip()
    sys.exit(f"the agent did not start (exit {agent.poll()}): see its lines above")


def child(env: dict, *args, timeout: float = 60) -> tuple[int, str]:
    """Run a step of the PyTorch workload under ``env``: (exit status, its last line)."""
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enforcement", default="mps", choices=["mps", "hami-core", "exclusive"])
    parser.add_argument("--gpu", type=int, default=0, help="the GPU's index (default 0)")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ocenter-gpu-check-"))
    token = secrets.token_urlsafe(24)
    agent, base = start_agent(work, args.enforcement, token)
    claim_id = str(uuid.uuid4())
    try:
        _, health = call(base, token, "GET", "/v1/health")
        print(f"  health: {json.dumps(health)}")
        mps = health.get("mps", {})
        if args.enforcement == "mps" and not mps.get("running"):
            print(f"  MPS cannot run on this host: {mps.get('detail')}. Fractional slices are refused there; the check goes on.")
        _, inventory = call(base, token, "GET", "/v1/inventory")
        gpus = [g for node in inventory.get("nodes", []) for g in node["accelerators"]]
        gpu = next((g for g in gpus if g["index"] == args.gpu), None)
        say("inventory from NVML", gpu is not None and gpu["health"] == "healthy",
            f"{len(gpus)} GPUs; #{args.gpu}: {gpu and (gpu['model'], gpu['memory_mib'], gpu['enforcement'], gpu['health'])}")  # fmt: skip
        if gpu is None:
            return 1

        status, claim = call(base, token, "PUT", f"/v1/allocations/{claim_id}",
                             {"gpu_uuid": gpu["uuid"], "compute_units": 25, "memory_mib": 8192})  # fmt: skip
        fractional = status in (200, 201)
        say("claim 25 units and 8 GiB", fractional or (args.enforcement == "mps" and not mps.get("running")),
            f"{status} {json.dumps(claim.get('env') or claim.get('detail'))}")  # fmt: skip
        if not fractional:  # without MPS: the whole GPU, which works anywhere
            status, claim = call(base, token, "PUT", f"/v1/allocations/{claim_id}",
                                 {"gpu_uuid": gpu["uuid"], "compute_units": 100, "memory_mib": 8192})  # fmt: skip
            say("claim the whole GPU instead", status in (200, 201), f"{status} {json.dumps(claim.get('env'))}")
        env = claim.get("env", {})
        say("the environment names its claim", env.get("OCENTER_CLAIM_ID") == claim_id, env.get("OCENTER_CLAIM_ID", "-"))

        code, line = child(env, "alloc", "6")
        say("6 GiB under the slice", code == 0, line)
        code, line = child(env, "alloc", "12")
        enforced = fractional and args.enforcement in ("mps", "hami-core")
        say(
            f"12 GiB {'refused (the slice holds 8)' if enforced else 'allowed (nothing bounds a whole GPU)'}",
            code == (3 if enforced else 0),  # 3: CUDA refused the memory; any other failure is not the slice at work
            line,
        )

        loop = subprocess.Popen([sys.executable, "-c", CHILD, "matmul", "25"], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
        seen, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline and loop.poll() is None:
            time.sleep(2)
            _, metrics = call(base, token, "GET", "/v1/metrics")
            mine = next((c for c in metrics.get("allocations", []) if c["id"] == claim_id), {})
            figures = next((g for g in metrics.get("accelerators", []) if g["uuid"] == gpu["uuid"]), {})
            shown = ("utilization_percent", "memory_used_mib", "power_watts", "temperature_c", "outside_memory_mib")
            print(f"  metrics: claim {json.dumps(mine)}; GPU {', '.join(f'{k} {figures.get(k)}' for k in shown)}")
            if mine.get("compute_units_used", 0) > 0 and mine.get("processes", 0) >= 1:
                seen = mine
                break
        loop.kill()
        loop.wait()
        say("the claim's utilization is above zero while the loop runs", seen is not None,
            f"{seen['compute_units_used']} units in use by {seen['processes']} process(es)" if seen else "never seen")  # fmt: skip

        status, released = call(base, token, "DELETE", f"/v1/allocations/{claim_id}")
        _, held = call(base, token, "GET", "/v1/allocations")
        say("release", status == 200 and released.get("released") and held.get("allocations") == [], json.dumps(released))
    finally:
        agent.terminate()
        agent.wait(10)
        if args.enforcement == "mps" and shutil.which("nvidia-cuda-mps-control"):  # stop the daemon the agent may have started
            subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", text=True, capture_output=True, timeout=10,
                           env={**os.environ, "CUDA_MPS_PIPE_DIRECTORY": str(work / "mps-pipe")}, check=False)  # fmt: skip
    passed = sum(ok for _, ok, _ in RESULTS)
    print(f"{passed} of {len(RESULTS)} steps passed in {time.monotonic() - started:.0f} s (enforcement {args.enforcement})")
    return 0 if passed == len(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
