"""Real pool agents for tests: ``python -m pools.agent`` as a child process on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on https?://([\d.]+):(\d+)")


def fleet_toml(pool: str, groups: list[dict], faults: dict | None = None) -> str:
    """A simulated agent's configuration: ``groups`` of nodes × GPUs."""
    lines = [f'[agent]\npool = "{pool}"\nbackend = "simulated"\n']
    for group in groups:
        lines.append("[[simulated.nodes]]")
        for key, value in group.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
    if faults:
        lines.append("[faults]")
        lines.extend(f"{k} = {v!r}" for k, v in faults.items())
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    """A value as TOML writes it: strings, numbers, lists and inline tables (a node group's templates)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def a100_nodes(count: int, gpus: int = 8, name: str = "n{n:02d}") -> dict:
    return {"name": name, "count": count, "gpus": gpus, "vendor": "NVIDIA", "model": "A100-SXM4-80GB", "memory_mib": 81920}


class AgentExited(RuntimeError):
    """The agent stopped before it listened: its exit code and what it printed."""

    def __init__(self, code: int, output: str):
        super().__init__(f"the agent exited with {code}: {output.strip()}")
        self.code = code
        self.output = output


class AgentProcess:
    """One running agent; ``restart()`` keeps its port and claims file."""

    def __init__(self, workdir: Path, pool: str, groups: list[dict], token: str = "test-pool-token-0123456789", *,
                 toml: str | None = None, env: dict | None = None, command: list | None = None):  # fmt: skip
        self.workdir = workdir
        self.pool = pool
        self.token = token
        self.config = workdir / f"{pool}.toml"
        self.state = workdir / f"{pool}-claims.sqlite3"
        self.port = 0
        self.env = env or {}
        # How the agent is started: this checkout's module, unless a test runs an installed one (``ocenter-agent``).
        self.command = command or [sys.executable, "-m", "pools.agent"]
        self.cwd = ROOT if command is None else workdir
        self.process: subprocess.Popen | None = None
        if toml is None:
            self.set_fleet(groups)
        else:
            self.config.write_text(toml)

    def set_fleet(self, groups: list[dict], faults: dict | None = None):
        self.config.write_text(fleet_toml(self.pool, groups, faults))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> AgentProcess:
        self.output = ""
        self.process = subprocess.Popen(
            [
                *self.command,
                "--config",
                str(self.config),
                "--state",
                str(self.state),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "WARNING",
            ],
            cwd=self.cwd,
            env={**os.environ, "OCENTER_AGENT_TOKEN": self.token, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AgentExited(self.process.wait(), self.output)
            self.output += line
            match = LISTENING.search(line)
            if match:
                self.port = int(match[2])
                return self
        raise RuntimeError(f"agent {self.pool} did not start within {timeout} s")

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        if self.process and self.process.stdout:
            self.process.stdout.close()

    def kill(self):
        self.stop(signal.SIGKILL)

    def restart(self) -> AgentProcess:
        self.stop()
        return self.start()

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=10)
