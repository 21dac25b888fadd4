"""
Queue order, pure. Requests that wait are taken by priority class, then by
fair share between tenants, then by age:

- a tenant's share is its dominant share (the larger of its fraction of all
  compute and of all memory) of what it holds now, plus a decaying memory of
  what it used lately, divided by its weight;
- each request taken adds its own size to its tenant's share, so a tenant
  that floods the queue is interleaved with the others, never ahead of them.
"""

from __future__ import annotations

from dataclasses import dataclass

PRIORITY_RANK = {"realtime": 0, "interruptible": 1, "offline": 2}


@dataclass(frozen=True)
class Waiting:
    """A queued request as ordering sees it."""

    id: object
    tenant_id: object
    priority: str
    created_at: float
    compute_units: int  # all slices together
    memory_mib: int


def dominant_share(compute_units: float, memory_mib: float, total_units: float, total_mib: float) -> float:
    return max(compute_units / total_units if total_units else 0.0, memory_mib / total_mib if total_mib else 0.0)


def order(waiting: list[Waiting], shares: dict, *, total_units: int, total_mib: int, weights: dict | None = None) -> list[Waiting]:
    """The order in which ``waiting`` requests are tried; ``shares`` maps tenant → current share."""
    weights = weights or {}
    shares = dict(shares)
    remaining = sorted(waiting, key=lambda w: (PRIORITY_RANK[w.priority], w.created_at))
    result = []
    while remaining:
        best = min(
            range(len(remaining)),
            key=lambda i: (
                PRIORITY_RANK[remaining[i].priority],
                shares.get(remaining[i].tenant_id, 0.0) / weights.get(remaining[i].tenant_id, 1.0),
                remaining[i].created_at,
            ),
        )
        item = remaining.pop(best)
        result.append(item)
        shares[item.tenant_id] = shares.get(item.tenant_id, 0.0) + dominant_share(
            item.compute_units, item.memory_mib, total_units, total_mib
        )
    return result
