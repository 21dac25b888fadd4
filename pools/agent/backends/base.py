"""What every backend offers the agent's server."""

from __future__ import annotations

from dataclasses import dataclass

from pools.agent import COMPUTE_UNITS_PER_GPU


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
    health_reason: str = ""
    # How a slice on it is held to its share: "mps", "hami-core", "exclusive" (whole GPUs only),
    # "mig" (in MIG mode: not sliced by oCenter), or the simulated backend's "simulated".
    enforcement: str = "simulated"
    # Whether a slice smaller than the whole GPU can be claimed on it now.
    fractional: bool = True
    # The shapes it is cut to (Ascend vNPU templates), smallest first: a slice is one of them, or the whole device.
    templates: tuple = ()

    def as_inventory(self) -> dict:
        return {
            "uuid": self.uuid,
            "index": self.index,
            "vendor": self.vendor,
            "model": self.model,
            "memory_mib": self.memory_mib,
            "health": "healthy" if self.healthy else "unhealthy",
            "health_reason": self.health_reason,
            "enforcement": self.enforcement,
            "fractional": self.fractional,
            **({"templates": [t.as_inventory() for t in self.templates]} if self.templates else {}),
        }

    def template(self, compute_units: int, memory_mib: int):
        """The template this shape is exactly, or None (a whole device, or a GPU that is not cut to templates)."""
        return next((t for t in self.templates if (t.compute_units, t.memory_mib) == (compute_units, memory_mib)), None)


@dataclass(frozen=True)
class Node:
    """A host and the GPUs in it."""

    name: str
    gpus: tuple[Gpu, ...]


class Unavailable(ValueError):
    """The agent cannot run this backend here (its library, driver or cluster is missing): one line that says why, and what to do."""


class Refused(Exception):
    """The backend cannot hold this claim now: answered 409 with the reason and its figures."""

    def __init__(self, detail: str, *, code: str = "does_not_fit", **figures):
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.figures = figures


class Backend:
    """A source of GPUs. Subclasses fill in inventory, environment and metrics."""

    name = "base"

    def nodes(self) -> list[Node]:
        raise NotImplementedError

    def launch_env(self, gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
        """The environment a workload is started with to stay inside its slice (the agent adds OCENTER_CLAIM_ID)."""
        raise NotImplementedError

    def check_claim(self, gpu: Gpu, compute_units: int, memory_mib: int, held: list) -> None:
        """Raise ``Refused`` when ``gpu`` cannot take this slice beside the claims ``held`` on it (the agent's bookkeeping
        has already checked units and memory against them)."""
        if compute_units < COMPUTE_UNITS_PER_GPU and not gpu.fractional:
            raise Refused(f"GPU {gpu.uuid} takes whole-GPU claims only (enforcement: {gpu.enforcement})", code="whole_gpu_only")
        if gpu.templates and compute_units < COMPUTE_UNITS_PER_GPU and gpu.template(compute_units, memory_mib) is None:
            shapes = ", ".join(f"{t.name} ({t.compute_units} units, {t.memory_mib} MiB)" for t in gpu.templates)
            raise Refused(f"{gpu.uuid} is cut to templates: claim one of {shapes}, or the whole device (100 units)",
                          code="not_a_template", templates=[t.as_inventory() for t in gpu.templates])  # fmt: skip

    def launch_spec(self, gpu: Gpu, claim) -> dict | None:
        """What a workload applies to run in this claim where it is not a process started by hand (a pod's spec); None here."""
        return None

    def claims_changed(self, claims: list) -> None:
        """The claims held changed (one was made or released): a backend that mirrors them elsewhere does so now."""

    def gpu_metrics(self, gpu: Gpu, claims: list) -> tuple[dict, list[dict]]:
        """(this GPU's figures, per-claim figures) for ``GET /v1/metrics``."""
        raise NotImplementedError

    def status(self) -> dict:
        """What ``/v1/health`` says of the backend beside the GPUs' health."""
        return {}

    def watch(self, changed) -> None:
        """Start watching the hardware; call ``changed()`` when the inventory (health, say) may have changed."""

    def close(self) -> None:
        """Stop watching and let go of the hardware."""


def mps_env(gpu: Gpu, compute_units: int, memory_mib: int) -> dict[str, str]:
    """How a slice is enforced on an NVIDIA GPU with MPS."""
    return {
        "CUDA_VISIBLE_DEVICES": gpu.uuid,
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(compute_units),
        # Device 0 is the only device the process sees.
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": f"0={memory_mib}M",
    }
