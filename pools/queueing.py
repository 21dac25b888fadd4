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
    created_at: float  # when it was asked, as any number that grows with it
    compute_units: int  # all slices together
    memory_mib: int
    # Where it may go, anywhere its constraints allow (a pools.placement.Ask; its tenant's quotas are checked once
    # it fits): the drain checks it against its view before it locks anything.
    shape: object = None


def dominant_share(compute_units: float, memory_mib: float, total_units: float, total_mib: float) -> float:
    return max(compute_units / total_units if total_units else 0.0, memory_mib / total_mib if total_mib else 0.0)


def order(waiting: list[Waiting], shares: dict, *, total_units: int, total_mib: int, weights: dict | None = None) -> list[Waiting]:
    """The order in which ``waiting`` requests are tried; ``shares`` maps tenant → current share.

    This is the greedy "take the head whose tenant holds least, add its size,
    repeat", computed as one sort (O(n log n), not O(n²)): a tenant's own
    requests are taken in (class, age) order, so the share it holds when its
    k-th request comes up is its share now plus the sizes of its k-1 before
    it, known before any is taken. Each tenant's keys only grow, so merging
    the tenants by smallest key, which is what the greedy does, is sorting
    by that key. Ties go to the earlier in ``waiting``, as the greedy's did.
    """
    weights = weights or {}
    ahead = {}  # per tenant: the sizes of its requests taken so far, summed in order (as SQL's running SUM does)
    keyed = []
    for index, item in sorted(enumerate(waiting), key=lambda p: (PRIORITY_RANK[p[1].priority], p[1].created_at, p[0])):
        own = ahead.get(item.tenant_id, 0.0)
        share = shares.get(item.tenant_id, 0.0) + own
        rank = PRIORITY_RANK[item.priority]
        keyed.append(((rank, share / weights.get(item.tenant_id, 1.0), item.created_at, index), item))
        ahead[item.tenant_id] = own + dominant_share(item.compute_units, item.memory_mib, total_units, total_mib)
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]
