"""
The GPUs of the host the agent runs on, read through NVIDIA's NVML (``pynvml``,
from PyPI's ``nvidia-ml-py``: imported here only, when a pool's file selects
``backend = "nvml"``).

- Inventory: every GPU's uuid, index, name and memory; a GPU in MIG mode is
  reported and not sliced. Health is read every ``health_seconds``: a GPU is
  unhealthy on uncorrectable ECC errors, pending retired pages or remapped
  rows, a critical XID event (kept until the agent restarts), or when NVML
  stops answering for it. NVML errors never take the agent down.
- Claims are enforced by the launch environment the pool's file chooses:
  ``mps`` (NVIDIA MPS: a share of the SMs and a pinned memory limit; needs a
  control daemon, without one only whole GPUs are claimed), ``hami-core``
  (HAMi's libvgpu, preloaded on the host), or ``exclusive`` (whole GPUs only).
  A claim is checked against the memory NVML says is taken, too.
- Metrics: per GPU utilization, memory, power, temperature and ECC counts;
  per claim, the processes whose environment carries its ``OCENTER_CLAIM_ID``
  (read from ``/proc/<pid>/environ``: the agent runs as root beside the GPUs),
  their memory and SM share. Processes that carry no claim id are outside use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time

from pools.agent import COMPUTE_UNITS_PER_GPU
from pools.agent.backends.base import Backend, Gpu, Node, Refused, Unavailable, mps_env

log = logging.getLogger("pools.agent.nvml")

MIB = 1024 * 1024
CLAIM_ID_VAR = b"OCENTER_CLAIM_ID="


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_claim_id(pid: int, proc: str = "/proc") -> str | None:
    """The OCENTER_CLAIM_ID in a process's environment; "" when it has none; None when it cannot be read (gone, not ours)."""
    try:
        with open(f"{proc}/{pid}/environ", "rb") as environ:
            variables = environ.read().split(b"\0")
    except OSError:
        return None
    return next((v[len(CLAIM_ID_VAR) :].decode(errors="replace") for v in variables if v.startswith(CLAIM_ID_VAR)), "")


def _remapped(rows) -> str:
    """(corrected, uncorrected, pending, failed) remapped rows, judged."""
    if rows[3]:
        return "remapping memory rows failed: the GPU needs service"
    return "remapped memory rows are pending: reset the GPU" if rows[2] else ""


class NvmlBackend(Backend):
    name = "nvml"

    def __init__(self, config):
        try:
            import pynvml
        except ImportError:
            raise Unavailable("the nvml backend needs NVIDIA's Python bindings: pip install 'ocenter[agent-nvml]' (nvidia-ml-py)") from None
        self.nv = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise Unavailable(f"NVML did not start ({exc}): is the NVIDIA driver installed and loaded on this host?") from None
        self.settings = config.nvml
        self.node = self.settings.node or socket.gethostname()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gpus: dict[str, dict] = {}  # uuid → {"handle", "index", "name", "memory_mib", "mig", "problem", "xid"}
        self._last_busy: dict[str, float] = {}
        self._process_seen_at: dict[str, int] = {}  # uuid → NVML timestamp (µs) of the last utilization sample read
        count = pynvml.nvmlDeviceGetCount()
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            self._gpus[uuid] = {
                "handle": handle, "index": index, "name": _text(pynvml.nvmlDeviceGetName(handle)),
                "memory_mib": int(memory.total // MIB), "mig": self._mig(handle), "problem": "", "xid": "",
            }  # fmt: skip
        self.mps = self._mps_status(start=self.settings.enforcement == "mps" and self.settings.start_mps_daemon)
        self._events = self._event_set()
        self._read_health()
        log.info("NVML %s: %d GPUs on %s, enforcement %s%s", _text(pynvml.nvmlSystemGetDriverVersion()), count, self.node,
                 self.settings.enforcement, f" (MPS: {self.mps['detail']})" if self.settings.enforcement == "mps" else "")  # fmt: skip

    # --- inventory and health ------------------------------------------------

    def nodes(self) -> list[Node]:
        with self._lock:
            gpus = tuple(self._gpu(uuid, info) for uuid, info in sorted(self._gpus.items(), key=lambda item: item[1]["index"]))
        return [Node(self.node, gpus)]

    def _gpu(self, uuid: str, info: dict) -> Gpu:
        problem = info["xid"] or info["problem"]
        enforcement = "mig" if info["mig"] else self.settings.enforcement
        return Gpu(
            uuid=uuid, index=info["index"], node=self.node, vendor="NVIDIA", model=info["name"], memory_mib=info["memory_mib"],
            tdp_watts=0, healthy=not problem, health_reason=problem, enforcement=enforcement,
            fractional=not info["mig"] and self._slices_fractionally(),
        )  # fmt: skip

    def _slices_fractionally(self) -> bool:
        enforcement = self.settings.enforcement
        return enforcement == "hami-core" or (enforcement == "mps" and self.mps["running"])

    def _mig(self, handle) -> bool:
        try:
            current, _pending = self.nv.nvmlDeviceGetMigMode(handle)
        except self.nv.NVMLError:  # not supported: a GPU without MIG
            return False
        return current == self.nv.NVML_DEVICE_MIG_ENABLE

    def _read_health(self) -> bool:
        """Read every GPU's health once; True when any changed."""
        changed = False
        for info in list(self._gpus.values()):
            problem = self._problem(info["handle"])
            with self._lock:
                if info["problem"] != problem:
                    if problem:
                        log.warning("GPU %d unhealthy: %s", info["index"], problem)
                    info["problem"], changed = problem, True
        return changed

    def _problem(self, handle) -> str:
        """What makes this GPU unfit for new work now, or ""."""
        nv = self.nv
        try:
            nv.nvmlDeviceGetMemoryInfo(handle)  # does it answer at all?
        except nv.NVMLError as exc:
            return f"NVML does not answer for it: {exc}"
        checks = (
            (lambda: nv.nvmlDeviceGetTotalEccErrors(handle, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC),
             lambda n: f"{n} uncorrectable ECC errors since the driver loaded" if n else ""),
            (lambda: nv.nvmlDeviceGetRetiredPagesPendingStatus(handle),
             lambda pending: "retired memory pages are pending: reset the GPU" if pending else ""),
            (lambda: nv.nvmlDeviceGetRemappedRows(handle), _remapped),
        )  # fmt: skip
        for read, judge in checks:
            try:
                verdict = judge(read())
            except nv.NVMLError_NotSupported:
                continue  # this GPU has no such counter
            except nv.NVMLError as exc:
                return f"NVML does not answer for it: {exc}"
            if verdict:
                return verdict
        return ""

    def _event_set(self):
        """An NVML event set for critical XIDs on every GPU, or None where events are not supported (then they go unseen)."""
        nv = self.nv
        try:
            events = nv.nvmlEventSetCreate()
            for info in self._gpus.values():
                nv.nvmlDeviceRegisterEvents(info["handle"], nv.nvmlEventTypeXidCriticalError, events)
            return events
        except nv.NVMLError as exc:
            log.warning("critical XID events cannot be watched here (%s): ECC and row counters are still read", exc)
            return None

    def watch(self, changed) -> None:
        threading.Thread(target=self._health_loop, args=(changed,), name="nvml-health", daemon=True).start()
        if self._events is not None:
            threading.Thread(target=self._xid_loop, args=(changed,), name="nvml-xid", daemon=True).start()

    def _health_loop(self, changed):
        while not self._stop.wait(self.settings.health_seconds):
            try:
                mps_before = self.mps["running"]
                if self.settings.enforcement == "mps":
                    self.mps = self._mps_status(start=False)
                if self._read_health() or self.mps["running"] != mps_before:
                    changed()
            except Exception:  # never let a reading take the agent down
                log.exception("reading GPU health failed")

    def _xid_loop(self, changed):
        nv = self.nv
        while not self._stop.is_set():
            try:
                event = nv.nvmlEventSetWait(self._events, 1000)
            except nv.NVMLError_Timeout:
                continue
            except nv.NVMLError as exc:
                log.warning("waiting for XID events failed (%s); trying again", exc)
                self._stop.wait(5)
                continue
            info = self._info_of(event.device)
            if info is None or not event.eventType & nv.nvmlEventTypeXidCriticalError:
                continue
            with self._lock:
                info["xid"] = (
                    f"critical XID {event.eventData} at {time.strftime('%Y-%m-%d %H:%M:%S')}: check the GPU, then restart the agent"
                )
            log.error("GPU %d: %s", info["index"], info["xid"])
            changed()

    def _info_of(self, handle) -> dict | None:
        try:
            uuid = _text(self.nv.nvmlDeviceGetUUID(handle))
        except self.nv.NVMLError:
            return None
        return self._gpus.get(uuid)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(self.nv.NVMLError):
            self.nv.nvmlShutdown()

    # --- MPS -----------------------------------------------------------------

    def _mps_env(self) -> dict:
        return {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": self.settings.mps_pipe_directory,
                "CUDA_MPS_LOG_DIRECTORY": self.settings.mps_log_directory}  # fmt: skip

    def _mps_status(self, *, start: bool) -> dict:
        """Whether an MPS control daemon answers on the pipe directory (starting one first, when asked to)."""
        if self.settings.enforcement != "mps":
            return {"running": False, "detail": f"not used (enforcement {self.settings.enforcement})"}
        control = shutil.which(self.settings.mps_control)
        if control is None:
            return {"running": False, "detail": f"{self.settings.mps_control} is not installed: only whole GPUs are claimed"}
        if not self._mps_answers(control) and start:
            os.makedirs(self.settings.mps_pipe_directory, exist_ok=True)
            os.makedirs(self.settings.mps_log_directory, exist_ok=True)
            subprocess.run([control, "-d"], env=self._mps_env(), timeout=10, check=False)
            time.sleep(0.2)
        if self._mps_answers(control):
            return {"running": True, "detail": f"the control daemon answers on {self.settings.mps_pipe_directory}"}
        return {"running": False, "detail": f"no MPS control daemon answers on {self.settings.mps_pipe_directory}: "
                                            "only whole GPUs are claimed"}  # fmt: skip

    def _mps_answers(self, control: str) -> bool:
        try:
            done = subprocess.run([control], input="get_server_list\n", env=self._mps_env(), capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def status(self) -> dict:
        return {"enforcement": self.settings.enforcement, "mps": self.mps}

    # --- claims --------------------------------------------------------------

    def launch_env(self, gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
        if compute_units >= COMPUTE_UNITS_PER_GPU or gpu.enforcement in ("exclusive", "mig"):
            return {"CUDA_VISIBLE_DEVICES": gpu.uuid}  # the whole GPU, nothing shared on it
        if gpu.enforcement == "hami-core":
            return {"CUDA_VISIBLE_DEVICES": gpu.uuid, "CUDA_DEVICE_MEMORY_LIMIT_0": f"{memory_mib}m",
                    "CUDA_DEVICE_SM_LIMIT": str(compute_units)}  # fmt: skip
        return {**mps_env(gpu, compute_units, memory_mib), "CUDA_MPS_PIPE_DIRECTORY": self.settings.mps_pipe_directory,
                "CUDA_MPS_LOG_DIRECTORY": self.settings.mps_log_directory}  # fmt: skip

    def check_claim(self, gpu: Gpu, compute_units: int, memory_mib: int, held: list) -> None:
        info = self._gpus[gpu.uuid]
        if info["mig"]:
            raise Refused(f"GPU {gpu.uuid} is in MIG mode: oCenter does not slice it", code="mig")
        if compute_units < COMPUTE_UNITS_PER_GPU and not gpu.fractional:
            reason = self.mps["detail"] if self.settings.enforcement == "mps" else "enforcement is exclusive"
            raise Refused(f"a slice smaller than a whole GPU cannot be enforced on {gpu.uuid}: {reason}", code="whole_gpu_only")
        try:
            memory = self.nv.nvmlDeviceGetMemoryInfo(info["handle"])
        except self.nv.NVMLError as exc:
            raise Refused(f"NVML does not answer for GPU {gpu.uuid}: {exc}", code="gpu_unhealthy") from None
        # What is taken: the claims held (whether or not their work has started) plus what others use, or NVML's own
        # count when that is more.
        claimed = sum(c.memory_mib for c in held)
        outside = sum(mib for _, mib in self._outside(info, {c.id for c in held}))
        taken = max(int(memory.used // MIB), claimed + outside)
        free = gpu.memory_mib - taken
        if memory_mib > free:
            raise Refused(
                f"GPU {gpu.uuid} has {free} MiB free by NVML's count ({claimed} MiB claimed, {outside} MiB used by processes "
                f"no claim names); the slice needs {memory_mib} MiB",
                free_memory_mib=free, claimed_memory_mib=claimed, outside_memory_mib=outside,
            )  # fmt: skip

    # --- metrics -------------------------------------------------------------

    def _processes(self, info) -> list[tuple[int, int]]:
        """(pid, MiB) of every compute process on the GPU."""
        return [(p.pid, int((p.usedGpuMemory or 0) // MIB)) for p in self.nv.nvmlDeviceGetComputeRunningProcesses(info["handle"])]

    def _outside(self, info, claim_ids: set) -> list[tuple[int, int]]:
        """(pid, MiB) of the processes on the GPU that none of these claims names."""
        try:
            return [(pid, mib) for pid, mib in self._processes(info) if read_claim_id(pid) not in claim_ids]
        except self.nv.NVMLError:
            return []

    def _sm_share(self, uuid: str, info) -> dict[int, int]:
        """Each process's share of the SMs (percent of the GPU) since the last read."""
        try:
            samples = self.nv.nvmlDeviceGetProcessUtilization(info["handle"], self._process_seen_at.get(uuid, 0))
        except self.nv.NVMLError:  # no sample since the last read (NotFound), or not supported
            return {}
        if samples:
            self._process_seen_at[uuid] = max(s.timeStamp for s in samples)
        share: dict[int, int] = {}
        for sample in samples:
            share[sample.pid] = max(share.get(sample.pid, 0), sample.smUtil)
        return share

    def gpu_metrics(self, gpu: Gpu, claims: list) -> tuple[dict, list[dict]]:
        nv, info, now = self.nv, self._gpus[gpu.uuid], time.time()
        figures = {"uuid": gpu.uuid, "memory_total_mib": gpu.memory_mib, "health": "healthy" if gpu.healthy else "unhealthy"}
        try:
            figures["utilization_percent"] = float(nv.nvmlDeviceGetUtilizationRates(info["handle"]).gpu)
            figures["memory_used_mib"] = int(nv.nvmlDeviceGetMemoryInfo(info["handle"]).used // MIB)
            figures["power_watts"] = round(nv.nvmlDeviceGetPowerUsage(info["handle"]) / 1000, 1)
            figures["temperature_c"] = float(nv.nvmlDeviceGetTemperature(info["handle"], nv.NVML_TEMPERATURE_GPU))
            processes = self._processes(info)
        except nv.NVMLError as exc:
            figures["error"] = f"NVML: {exc}"
            return figures, [{"id": c.id, "gpu_uuid": gpu.uuid, "error": figures["error"]} for c in claims]
        try:
            figures["ecc_uncorrected"] = int(nv.nvmlDeviceGetTotalEccErrors(info["handle"], nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                                                                            nv.NVML_VOLATILE_ECC))  # fmt: skip
        except nv.NVMLError:
            figures["ecc_uncorrected"] = None
        share = self._sm_share(gpu.uuid, info)
        per_claim = {c.id: {"id": c.id, "gpu_uuid": gpu.uuid, "processes": 0, "memory_used_mib": 0, "compute_units_used": 0.0}
                     for c in claims}  # fmt: skip
        outside = []
        for pid, mib in processes:
            claim_id = read_claim_id(pid)
            row = per_claim.get(claim_id or "")
            if row is None:  # no claim id, one this GPU holds no claim for, or a process we cannot read: someone else's
                outside.append({"pid": pid, "memory_mib": mib, "claim_id": claim_id or None})
                continue
            row["processes"] += 1
            row["memory_used_mib"] += mib
            row["compute_units_used"] += float(share.get(pid, 0))
        for row in per_claim.values():
            if row["compute_units_used"] > 0:
                self._last_busy[row["id"]] = now
            row["last_busy_at"] = self._last_busy.get(row["id"])
        figures["outside_processes"] = outside
        figures["outside_memory_mib"] = sum(p["memory_mib"] for p in outside)
        return figures, list(per_claim.values())
