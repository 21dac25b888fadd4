"""
A simulated fleet: nodes × GPUs from the configuration file.

GPU uuids are derived from the pool, node and index, so they are the same
after a restart. Utilization follows the claims held: each claim works at a
slowly drifting fraction of the compute it holds, as real jobs do.
"""

from __future__ import annotations

import math
import time
import uuid
import zlib

from pools.agent.backends.base import Backend, Gpu, Node, Refused, mps_env

IDLE_WATTS_SHARE = 0.15
# A claim's label that makes it work ("busy") or sit idle ("idle") in the simulation, for demos and tests.
SIMULATE_LABEL = "ocenter.io/simulate"
UUID_NAMESPACE = uuid.UUID("6f0c8a52-3b1e-4d5e-9a57-0c3e7e5b2a10")


def _activity(key: str, now: float) -> float:
    """A smooth, repeatable working fraction in [0.55, 0.98] for a claim."""
    phase = (zlib.crc32(key.encode()) % 1000) / 1000 * 2 * math.pi
    return 0.765 + 0.215 * math.sin(now / 23.0 + phase)


class SimulatedBackend(Backend):
    name = "simulated"

    def __init__(self, config):
        self.config = config
        self._gpus: list[Gpu] = []
        for group in config.node_groups:
            for n in range(1, group.count + 1):
                node = group.name.format(n=n) if "{" in group.name else f"{group.name}-{n:02d}"
                for index in range(group.gpus):
                    self._gpus.append(
                        Gpu(
                            uuid=f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{config.pool}/{node}/{index}')}",
                            index=index,
                            node=node,
                            vendor=group.vendor,
                            model=group.model,
                            memory_mib=group.memory_mib,
                            tdp_watts=group.tdp_watts,
                            templates=group.templates,
                        )
                    )

    def nodes(self) -> list[Node]:
        unhealthy = set(self.config.faults.unhealthy_gpus)
        by_node: dict[str, list[Gpu]] = {}
        for gpu in self._gpus:
            if gpu.uuid in unhealthy:
                gpu = Gpu(**{**gpu.__dict__, "healthy": False, "health_reason": "unhealthy_gpus fault"})
            by_node.setdefault(gpu.node, []).append(gpu)
        return [Node(name, tuple(gpus)) for name, gpus in by_node.items()]

    def launch_env(self, gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
        if gpu.vendor.lower() == "nvidia":
            return mps_env(gpu, compute_units, memory_mib)
        # Ascend and other chips: the device by index; the share (its vNPU template, where the device is cut to them) is
        # carried for the runtime that enforces it.
        template = gpu.template(compute_units, memory_mib)
        return {
            "ASCEND_RT_VISIBLE_DEVICES": str(gpu.index),
            "OCENTER_COMPUTE_UNITS": str(compute_units),
            "OCENTER_MEMORY_MIB": str(memory_mib),
            **({"OCENTER_VNPU_TEMPLATE": template.name} if template else {}),
        }

    def check_claim(self, gpu: Gpu, compute_units: int, memory_mib: int, held: list) -> None:
        super().check_claim(gpu, compute_units, memory_mib, held)
        outside = self.config.faults.outside_use_mib.get(gpu.uuid, 0)
        free = gpu.memory_mib - sum(c.memory_mib for c in held) - outside
        if outside and memory_mib > free:
            raise Refused(f"GPU {gpu.uuid} has {free} MiB free ({outside} MiB used by processes no claim names); "
                          f"the slice needs {memory_mib} MiB", free_memory_mib=free, outside_memory_mib=outside)  # fmt: skip

    def gpu_metrics(self, gpu: Gpu, claims: list) -> tuple[dict, list[dict]]:
        now = time.time()
        per_claim = []
        busy_units = 0.0
        memory_used = 0
        for claim in claims:
            busy = _busy(claim)
            activity = _activity(claim.id, now) if busy else 0.0
            units = claim.compute_units * activity
            mib = int(claim.memory_mib * (0.6 + 0.35 * activity)) if busy else 0
            busy_units += units
            memory_used += mib
            per_claim.append({
                "id": claim.id, "gpu_uuid": gpu.uuid, "compute_units_used": round(units, 1), "memory_used_mib": mib,
                "processes": 1 if busy else 0, "last_busy_at": now if busy else None,
            })  # fmt: skip
        if claims:
            memory_used = min(gpu.memory_mib, memory_used + 420)  # the driver's context
        outside = self.config.faults.outside_use_mib.get(gpu.uuid, 0)
        memory_used = min(gpu.memory_mib, memory_used + outside)
        utilization = min(100.0, busy_units)
        power = gpu.tdp_watts * (IDLE_WATTS_SHARE + (1 - IDLE_WATTS_SHARE) * utilization / 100)
        return (
            {
                "uuid": gpu.uuid,
                "utilization_percent": round(utilization, 1),
                "memory_used_mib": memory_used,
                "memory_total_mib": gpu.memory_mib,
                "power_watts": round(power, 1),
                "temperature_c": round(31 + 0.45 * utilization, 1),
                "ecc_uncorrected": 0,
                "outside_memory_mib": outside,
                "outside_processes": [{"pid": None, "memory_mib": outside, "claim_id": None}] if outside else [],
            },
            per_claim,
        )


def _busy(claim) -> bool:
    """Whether a simulated claim works: as its labels say (``ocenter.io/simulate``), else three claims in four."""
    said = claim.labels.get(SIMULATE_LABEL)
    if said in ("idle", "busy"):
        return said == "busy"
    return zlib.crc32(claim.id.encode()) % 4 != 0
