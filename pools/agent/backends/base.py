"""What every backend offers the agent's server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One physical accelerator as the agent reports it."""

    uuid: str
    index: int
    node: str
    vendor: str
    model: str
    memory_mib: int
    tdp_watts: int
    healthy: bool = True

    def as_inventory(self) -> dict:
        return {
            "uuid": self.uuid,
            "index": self.index,
            "vendor": self.vendor,
            "model": self.model,
            "memory_mib": self.memory_mib,
            "health": "healthy" if self.healthy else "unhealthy",
        }


@dataclass(frozen=True)
class Node:
    """A host and the GPUs in it."""

    name: str
    gpus: tuple[Gpu, ...]


class Backend:
    """A source of GPUs. Subclasses fill in inventory, environment and metrics."""

    name = "base"

    def nodes(self) -> list[Node]:
        raise NotImplementedError

    def launch_env(self, gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
        """The environment a workload is started with to stay inside its slice."""
        raise NotImplementedError

    def gpu_metrics(self, gpu: Gpu, claims: list) -> tuple[dict, list[dict]]:
        """(this GPU's figures, per-claim figures) for ``GET /v1/metrics``."""
        raise NotImplementedError


def mps_env(gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
    """How a slice is enforced on an NVIDIA GPU with MPS."""
    return {
        "CUDA_VISIBLE_DEVICES": gpu.uuid,
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(compute_units),
        # Device 0 is the only device the process sees.
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": f"0={memory_mib}M",
    }
