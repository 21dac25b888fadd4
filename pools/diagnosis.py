"""
Why a queued allocation waits, and what would let it run: the queue page's
(and the queue API's) structured reason.

Each waiting request is tried as the queue's drain tries it, against this
process's view of the fleet and its tenant's quotas and budgets, writing
nothing. What stops it is one ``Blocker``:

- ``quota``: a quota's limit (or, for realtime work, its guarantee) is
  reached, or the tenant has no quota where GPUs of its kind are;
- ``budget``: a hard budget is spent, or the lease would overrun it;
- ``no_gpu``: no pool has a GPU of the kind it asks for;
- ``unavailable``: its kind exists only in pools or on nodes that take no
  work now (unreachable, draining, unhealthy GPUs);
- ``room``: GPUs of its kind are up, and none has the room free;
- ``turn``: it fits now, and is placed when the queue reaches it.

with its figures and the remedies that apply: a smaller slice that fits
now, another pool or model with room, a quota or budget raise, a shorter
lease.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from ocenter.errors import Refused
from pools.fleet import fleet
from pools.models import Accelerator, Allocation
from pools.placement import Ask, GpuState, allows, can_hold
from pools.placement import fits as has_room
from pools.selectors import tenant_usage
from pools.services.allocations.room import admit, ask_of, fits, slice_asks
from tenants.models import Quota

KINDS = ("quota", "budget", "no_gpu", "unavailable", "room", "turn")


@dataclass
class Blocker:
    """What keeps one allocation waiting: ``kind`` (one of ``KINDS``), its figures, and what would let it run."""

    kind: str
    figures: dict = field(default_factory=dict)
    remedies: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "figures": self.figures, "remedies": self.remedies}


def blockers(allocations) -> dict:
    """``{allocation_id: Blocker}`` for these queued allocations (others are left out).

    The tenants' usage and quotas are read once; the fleet is this process's view of it. Requests alike (tenant,
    project, class, lease, shape) are alike blocked: each kind is tried once, so a page of a long queue costs the
    queries of its few kinds, not of its rows.
    """
    waiting = [a for a in allocations if a.state == Allocation.State.QUEUED]
    if not waiting:
        return {}
    tenants = {a.tenant_id for a in waiting}
    usage = tenant_usage(tenants)
    quotas = defaultdict(list)
    for quota in Quota.objects.filter(tenant_id__in=tenants):
        quotas[quota.tenant_id].append(quota)
    gpus = fleet.snapshot()
    found, alike = {}, {}
    for a in waiting:
        key = (a.tenant_id, a.project_id, a.priority, a.lease_seconds, ask_of(a, None))
        if key not in alike:
            alike[key] = _blocker(a, usage.get(a.tenant_id, []), quotas[a.tenant_id], gpus)
        found[a.id] = alike[key]
    return found


def _blocker(allocation: Allocation, usage: list, quotas: list, gpus: list[GpuState]) -> Blocker:
    ask = ask_of(allocation, quotas)
    found = fits(ask)
    if found is not None:
        chosen, _ = found
        try:
            admit(allocation, slice_asks(allocation, chosen), usage, quotas)
        except Refused as refused:
            return _refused(refused)
        return Blocker("turn", {"pool": chosen[0].pool})
    kind = [g for g in gpus if allows(ask, g) and can_hold(ask, g) and g.memory_mib >= ask.memory_mib]
    if not kind:
        anywhere = replace(ask, allowed=None)
        elsewhere = sorted({g.pool for g in gpus if allows(anywhere, g) and can_hold(anywhere, g) and g.memory_mib >= ask.memory_mib})
        if elsewhere:  # GPUs of its kind are up, in pools its tenant has no quota for
            return Blocker("quota", {"code": "no_quota", "pools": elsewhere}, [{"kind": "quota_in", "pools": elsewhere}])
        return _not_up(allocation, ask, gpus)
    most = max(kind, key=lambda g: (g.free_units, g.free_mib))
    figures = {"gpus": len(kind), "count": ask.count, "compute_units": ask.compute_units, "memory_mib": ask.memory_mib,
               "free_units": most.free_units, "free_mib": most.free_mib, "with_room": sum(1 for g in kind if has_room(ask, g))}  # fmt: skip
    remedies = []
    if most.free_units > 0 and most.free_mib > 0 and (most.free_units < ask.compute_units or most.free_mib < ask.memory_mib):
        remedies.append({"kind": "smaller", "compute_units": min(most.free_units, ask.compute_units),
                         "memory_mib": min(most.free_mib, ask.memory_mib), "pool": most.pool})  # fmt: skip
    remedies += _elsewhere(ask, gpus)
    remedies.append({"kind": "wait"})
    return Blocker("room", figures, remedies)


def _elsewhere(ask: Ask, gpus: list[GpuState]) -> list[dict]:
    """Where the same slice would fit now, had it not asked for this pool, region or model."""
    remedies = []
    if ask.pool or ask.region:
        loose = replace(ask, pool="", region="")
        pools = sorted({g.pool for g in gpus if allows(loose, g) and has_room(loose, g)} - {ask.pool})
        if pools:
            remedies.append({"kind": "another_pool", "pools": pools})
    if ask.model or ask.vendor:
        loose = replace(ask, model="", vendor="")
        models = sorted({g.model for g in gpus if allows(loose, g) and has_room(loose, g)} - {ask.model})
        if models:
            remedies.append({"kind": "another_model", "models": models})
    return remedies


def _not_up(allocation: Allocation, ask: Ask, gpus: list[GpuState]) -> Blocker:
    """No GPU of its kind takes work: are there some that do not now (and why), or none at all?"""
    present = Accelerator.objects.filter(gone_at=None, memory_mib__gte=ask.memory_mib)
    if ask.vendor:
        present = present.filter(vendor__iexact=ask.vendor)
    if ask.model:
        present = present.filter(model=ask.model)
    if ask.pool:
        present = present.filter(pool__name=ask.pool)
    if ask.region:
        present = present.filter(pool__region=ask.region)
    pools = {}
    for name, status, pool_draining, node_draining, health in present.values_list(
        "pool__name", "pool__status", "pool__draining", "node__draining", "health"
    ).distinct():
        why = pools.setdefault(name, set())
        why.add("draining" if pool_draining or node_draining else status if status not in ("healthy", "degraded") else health)
    remedies = _elsewhere(ask, gpus)
    if pools:
        return Blocker("unavailable", {"pools": [{"name": n, "why": sorted(w)} for n, w in sorted(pools.items())]}, remedies)
    models = sorted({g.model for g in gpus if g.memory_mib >= ask.memory_mib})
    figures = {"vendor": ask.vendor, "model": ask.model, "pool": ask.pool, "region": ask.region}
    return Blocker("no_gpu", figures, remedies or ([{"kind": "another_model", "models": models}] if models else []))


def _refused(refused: Refused) -> Blocker:
    figures = {k: v for k, v in refused.extra.items() if k != "code"}
    code = refused.extra.get("code", "")
    figures["code"] = code
    if code == "quota_exceeded":
        over = figures["used"] + figures["asked"] - figures["limit"]
        return Blocker("quota", figures, [{"kind": "quota_raise", "dimension": figures["dimension"], "amount": over}, {"kind": "release"}])
    if code == "no_quota":
        return Blocker("quota", {**figures, "pools": [figures.get("pool", "")]}, [{"kind": "quota_in", "pools": [figures.get("pool", "")]}])
    if code == "budget_exhausted":
        return Blocker("budget", figures, [{"kind": "budget_raise"}, {"kind": "next_period"}])
    if code == "budget_would_overrun":
        figures["left"] = str(Decimal(figures["limit"]) - Decimal(figures["used"]))
        return Blocker("budget", figures, [{"kind": "shorter_lease"}, {"kind": "budget_raise"}])
    return Blocker("quota" if "quota" in code else "budget", {**figures, "detail": refused.detail})
