"""The nvml backend as a real agent process over HTTP, on a fake NVML (tests/agent/fake_nvml: the only thing faked).

The GPUs' processes are real processes of this test, started with (or without) an OCENTER_CLAIM_ID in their
environment: the agent reads them from /proc as it does on a GPU host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.agents import AgentExited, AgentProcess

FAKE = Path(__file__).resolve().parent / "fake_nvml"
H100 = 81559


def _gpu(index: int, **fields) -> dict:
    return {"uuid": f"GPU-{index:08d}-fake-h100", "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": H100, "memory_used_mib": 0,
            "utilization": 0, "power_mw": 70_000, "temperature": 34, "mig": False, "ecc_uncorrected": 0, "retired_pending": False,
            "remapped": [0, 0, 0, 0], "lost": False, "processes": [], "xid": [], **fields}  # fmt: skip


class Host:
    """A GPU host as the fake NVML shows it, and an nvml agent on it."""

    def __init__(self, tmp_path: Path, gpus: list[dict], **nvml):
        self.tmp = tmp_path
        self.state_file = tmp_path / "nvml.json"
        self.state = {"driver": "550.54.15", "gpus": gpus}
        self.write()
        self.mps_up = tmp_path / "mps-daemon-answers"
        control = tmp_path / "nvidia-cuda-mps-control"  # NVIDIA's binary is outside the project: this one answers when told to
        control.write_text(f'#!/bin/sh\n[ "$1" = -d ] && touch {self.mps_up} && exit 0\n[ -e {self.mps_up} ] || exit 1\ncat >/dev/null\n')
        control.chmod(0o755)
        settings = {"enforcement": "mps", "node": "gpu-host-1", "mps_control": str(control), "health_seconds": 0.2,
                    "mps_pipe_directory": str(tmp_path / "mps-pipe"), "mps_log_directory": str(tmp_path / "mps-log"), **nvml}  # fmt: skip
        table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
        toml = f'[agent]\npool = "gpu-host"\nbackend = "nvml"\n\n[nvml]\n{table}\n'
        env = {"PYTHONPATH": os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]), "OCENTER_FAKE_NVML": str(self.state_file)}
        self.agent = AgentProcess(tmp_path, "gpu-host", [], toml=toml, env=env)
        self.workloads: list[subprocess.Popen] = []

    def write(self):
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_file)  # the agent never reads half a file

    def set(self, index: int, **fields):
        self.state["gpus"][index].update(fields)
        self.write()

    def workload(self, claim_id: str | None = None) -> int:
        """A real process, with the claim's id in its environment (or none): what a GPU process looks like to the agent."""
        env = {k: v for k, v in os.environ.items() if k != "OCENTER_CLAIM_ID"}
        if claim_id:
            env["OCENTER_CLAIM_ID"] = claim_id
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
        self.workloads.append(process)
        return process.pid

    def start(self):
        return self.agent.start()

    def stop(self):
        for process in self.workloads:
            process.kill()
            process.wait()
        self.agent.stop()

    def api(self):
        return self.agent.client()


@pytest.fixture
def host(tmp_path):
    hosts = []

    def make(gpus=None, *, mps=True, **nvml) -> Host:
        made = Host(tmp_path, gpus or [_gpu(0), _gpu(1)], **nvml)
        if mps:
            made.mps_up.touch()
        hosts.append(made)
        made.start()
        return made

    yield make
    for made in hosts:
        made.stop()


def _claim(api, gpu_uuid: str, units: int, mib: int, claim_id: str | None = None):
    return api.put(f"/v1/allocations/{claim_id or uuid.uuid4()}", json={"gpu_uuid": gpu_uuid, "compute_units": units, "memory_mib": mib})


def _until(check, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (value := check()) is not None and value is not False:
            return value
        time.sleep(0.05)
    return check()


def test_the_inventory_comes_from_nvml_with_mig_marked_and_the_enforcement_said(host):
    h = host([_gpu(0), _gpu(1, mig=True, name="NVIDIA A100-SXM4-80GB", memory_total_mib=81920)])
    inventory = h.api().get("/v1/inventory").json()
    (node,) = inventory["nodes"]
    assert node["name"] == "gpu-host-1"
    whole, mig = node["accelerators"]
    assert (whole["uuid"], whole["index"], whole["vendor"], whole["model"], whole["memory_mib"]) == (
        "GPU-00000000-fake-h100",
        0,
        "NVIDIA",
        "NVIDIA H100 80GB HBM3",
        H100,
    )
    assert (whole["enforcement"], whole["fractional"], whole["health"]) == ("mps", True, "healthy")
    assert (mig["enforcement"], mig["fractional"], mig["model"]) == ("mig", False, "NVIDIA A100-SXM4-80GB")
    refused = _claim(h.api(), mig["uuid"], 100, 1000)
    assert refused.status_code == 409 and refused.json()["code"] == "mig"
    health = h.api().get("/v1/health").json()
    assert health["backend"] == "nvml" and health["mps"]["running"] is True and health["enforcement"] == "mps"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ecc_uncorrected": 3}, "3 uncorrectable ECC errors"),
        ({"retired_pending": True}, "retired memory pages are pending"),
        ({"remapped": [0, 0, 1, 0]}, "remapped memory rows are pending"),
        ({"remapped": [0, 0, 0, 1]}, "remapping memory rows failed"),
        ({"lost": True}, "NVML does not answer for it: GPU is lost"),
    ],
)
def test_each_health_problem_makes_the_gpu_unhealthy_in_a_new_generation(host, fields, reason):
    h = host()
    before = h.api().get("/v1/inventory").json()
    h.set(0, **fields)

    def unhealthy():
        gpu = h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]
        return gpu if gpu["health"] == "unhealthy" else None

    gpu = _until(unhealthy)
    assert gpu and reason in gpu["health_reason"]
    after = h.api().get("/v1/inventory").json()
    assert after["generation"] > before["generation"]
    assert after["nodes"][0]["accelerators"][1]["health"] == "healthy"
    refused = _claim(h.api(), gpu["uuid"], 100, 1000)
    assert refused.status_code == 409 and refused.json()["code"] == "gpu_unhealthy" and reason in refused.json()["detail"]
    h.set(0, **{k: _gpu(0)[k] for k in fields})  # the counter clears (a reset): healthy again
    assert _until(lambda: h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]["health"] == "healthy")


def test_a_critical_xid_event_marks_the_gpu_unhealthy_until_the_agent_restarts(host):
    h = host()
    h.set(1, xid=[79])
    assert _until(lambda: h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][1]["health"] == "unhealthy")
    gpu = h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][1]
    assert "critical XID 79" in gpu["health_reason"]
    time.sleep(0.5)  # later reads see no new event: it stays unhealthy
    assert h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][1]["health"] == "unhealthy"


@pytest.mark.parametrize(
    ("enforcement", "expected"),
    [
        ("mps", {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "25", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=8192M"}),
        ("hami-core", {"CUDA_DEVICE_SM_LIMIT": "25", "CUDA_DEVICE_MEMORY_LIMIT_0": "8192m"}),
    ],
)
def test_a_slice_gets_the_environment_that_enforces_it(host, enforcement, expected):
    h = host(enforcement=enforcement)
    gpu = h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]
    assert gpu["enforcement"] == enforcement and gpu["fractional"] is True
    claim_id = str(uuid.uuid4())
    answer = _claim(h.api(), gpu["uuid"], 25, 8192, claim_id)
    assert answer.status_code == 201, answer.json()
    env = answer.json()["env"]
    assert {k: env[k] for k in expected} == expected
    assert env["CUDA_VISIBLE_DEVICES"] == gpu["uuid"] and env["OCENTER_CLAIM_ID"] == claim_id
    if enforcement == "mps":
        assert env["CUDA_MPS_PIPE_DIRECTORY"].endswith("mps-pipe") and env["CUDA_MPS_LOG_DIRECTORY"].endswith("mps-log")
    whole = _claim(h.api(), h.state["gpus"][1]["uuid"], 100, 1000).json()["env"]
    assert set(whole) == {"CUDA_VISIBLE_DEVICES", "OCENTER_CLAIM_ID"}  # a whole GPU: nothing shared, nothing to limit


def test_exclusive_enforcement_claims_whole_gpus_only(host):
    h = host(enforcement="exclusive")
    gpu = h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]
    assert gpu["fractional"] is False
    refused = _claim(h.api(), gpu["uuid"], 25, 1000)
    assert refused.status_code == 409 and refused.json()["code"] == "whole_gpu_only" and "exclusive" in refused.json()["detail"]
    assert _claim(h.api(), gpu["uuid"], 100, 1000).status_code == 201


def test_without_an_mps_daemon_fractional_claims_are_refused_and_whole_gpus_still_work(host):
    h = host(mps=False)
    health = h.api().get("/v1/health").json()
    assert health["mps"]["running"] is False and "no MPS control daemon answers" in health["mps"]["detail"]
    gpu = h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]
    assert gpu["fractional"] is False
    refused = _claim(h.api(), gpu["uuid"], 50, 1000)
    assert refused.status_code == 409 and "no MPS control daemon answers" in refused.json()["detail"]
    assert _claim(h.api(), gpu["uuid"], 100, 1000).status_code == 201
    h.mps_up.touch()  # the daemon comes up: the agent notices at its next health read
    assert _until(lambda: h.api().get("/v1/health").json()["mps"]["running"])
    assert _until(lambda: h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"][1]["fractional"])


def test_the_agent_starts_the_mps_daemon_when_its_file_says_so(host):
    h = host(mps=False, start_mps_daemon=True)
    assert h.api().get("/v1/health").json()["mps"]["running"] is True and h.mps_up.exists()


def test_a_claim_the_gpu_memory_cannot_hold_by_nvmls_count_is_refused_with_the_figures(host):
    h = host()
    outsider = h.workload(None)
    h.set(0, memory_used_mib=70_000, processes=[{"pid": outsider, "memory_mib": 70_000, "sm": 0}])
    refused = _claim(h.api(), h.state["gpus"][0]["uuid"], 25, 16_384)
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "does_not_fit" and body["outside_memory_mib"] == 70_000 and body["free_memory_mib"] == H100 - 70_000
    assert _claim(h.api(), h.state["gpus"][0]["uuid"], 25, 8_192).status_code == 201


def test_per_claim_usage_is_matched_through_the_claim_id_and_outside_use_is_reported(host):
    h = host()
    api, gpu = h.api(), h.state["gpus"][0]["uuid"]
    busy, idle = str(uuid.uuid4()), str(uuid.uuid4())
    assert _claim(api, gpu, 50, 20_000, busy).status_code == 201
    assert _claim(api, gpu, 25, 10_000, idle).status_code == 201
    worker, helper, stranger = h.workload(busy), h.workload(busy), h.workload(None)
    h.set(0, utilization=60, memory_used_mib=30_000, processes=[
        {"pid": worker, "memory_mib": 12_000, "sm": 35}, {"pid": helper, "memory_mib": 2_000, "sm": 5},
        {"pid": stranger, "memory_mib": 9_000, "sm": 20}])  # fmt: skip
    metrics = api.get("/v1/metrics").json()
    claims = {c["id"]: c for c in metrics["allocations"]}
    assert (claims[busy]["processes"], claims[busy]["memory_used_mib"], claims[busy]["compute_units_used"]) == (2, 14_000, 40.0)
    assert claims[busy]["last_busy_at"] is not None
    assert (claims[idle]["processes"], claims[idle]["memory_used_mib"], claims[idle]["compute_units_used"]) == (0, 0, 0.0)
    assert claims[idle]["last_busy_at"] is None
    figures = next(g for g in metrics["accelerators"] if g["uuid"] == gpu)
    assert (figures["utilization_percent"], figures["memory_used_mib"], figures["ecc_uncorrected"]) == (60.0, 30_000, 0)
    assert figures["outside_memory_mib"] == 9_000 and [p["pid"] for p in figures["outside_processes"]] == [stranger]
    # Memory someone else holds is taken: a claim that would need it is refused.
    free = H100 - (20_000 + 10_000) - 9_000
    assert _claim(api, gpu, 10, free + 1).status_code == 409
    assert _claim(api, gpu, 10, free).status_code == 201


def test_nvml_failing_mid_run_marks_gpus_unhealthy_and_never_takes_the_agent_down(host):
    h = host()
    claim_id = str(uuid.uuid4())
    assert _claim(h.api(), h.state["gpus"][0]["uuid"], 25, 1000, claim_id).status_code == 201
    h.state["broken"] = True
    h.write()
    assert _until(lambda: all(g["health"] == "unhealthy" for g in h.api().get("/v1/inventory").json()["nodes"][0]["accelerators"]))
    metrics = h.api().get("/v1/metrics")
    assert metrics.status_code == 200
    assert all("NVML" in g["error"] for g in metrics.json()["accelerators"])
    assert h.api().get("/v1/health").status_code == 200 and h.agent.process.poll() is None
    assert h.api().delete(f"/v1/allocations/{claim_id}").json()["released"] is True  # claims are still let go


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("no-library", "pip install 'ocenter[agent-nvml]'"),
        ("DRIVER_NOT_LOADED", "NVML did not start (Driver Not Loaded): is the NVIDIA driver installed and loaded on this host?"),
    ],
)
def test_an_nvml_agent_without_the_library_or_the_driver_fails_at_start_with_one_clear_line(tmp_path, broken, message):
    h = Host(tmp_path, [_gpu(0)])
    if broken == "no-library":
        h.agent.env["PYTHONPATH"] = ""  # no pynvml anywhere
    else:
        h.state["init_error"] = broken
        h.write()
    with pytest.raises(AgentExited) as exited:
        h.start()
    assert exited.value.code == 2
    lines = [line for line in exited.value.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pools.agent: ") and message in lines[0]
