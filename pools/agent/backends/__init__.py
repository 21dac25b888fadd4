"""Backends: where an agent's GPUs come from and how a slice is enforced."""

from pools.agent.backends.base import Backend, Gpu, Node, Refused


def load_backend(config) -> Backend:
    """The backend the configuration names."""
    if config.backend == "simulated":
        from pools.agent.backends.simulated import SimulatedBackend

        return SimulatedBackend(config)
    if config.backend == "nvml":
        from pools.agent.backends.nvml import NvmlBackend  # imports pynvml: only where a pool's file asks for it

        return NvmlBackend(config)
    if config.backend == "kubernetes":
        from pools.agent.backends.kubernetes import KubernetesBackend  # imports the kubernetes client: only where asked for

        return KubernetesBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}; this agent knows: simulated, nvml, kubernetes")


__all__ = ["Backend", "Gpu", "Node", "Refused", "load_backend"]
