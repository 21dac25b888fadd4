"""Backends: where an agent's GPUs come from and how a slice is enforced."""

from pools.agent.backends.base import Backend, Gpu, Node


def load_backend(config) -> Backend:
    """The backend the configuration names."""
    if config.backend == "simulated":
        from pools.agent.backends.simulated import SimulatedBackend

        return SimulatedBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}; this agent knows: simulated")


__all__ = ["Backend", "Gpu", "Node", "load_backend"]
