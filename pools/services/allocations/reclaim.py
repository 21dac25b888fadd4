"""
Reclaiming room for realtime work, which is never made to wait for offline work.

- Within its tenant's limit: realtime work that fits the guarantee but would
  take its tenant past the limit reclaims the tenant's own offline work, then
  its borrowed interruptible work, youngest first, until it fits.
- On the GPUs: realtime work that finds no room reclaims the fewest, youngest
  offline and borrowed allocations (anyone's) whose GPUs can then hold it.

Victims are marked ``releasing`` (with ``preempted_by``) in the request's
transaction; the caller releases them on their agents once it has committed.
"""

from __future__ import annotations

from dataclasses import replace

from django.db.models import Q

from ocenter import reasons
from ocenter.errors import Refused
from pools.models import Allocation, Slice
from pools.placement import RECLAIM_ORDER, Holder, choose_victims, place
from pools.selectors import candidate_gpus
from pools.services.allocations.history import transition
from pools.services.allocations.room import ask_of
from tenants.quotas import DIMENSIONS, OverLimit, applies

State = Allocation.State
RECLAIMABLE = Q(allocation__priority=Allocation.Priority.OFFLINE) | Q(
    allocation__priority=Allocation.Priority.INTERRUPTIBLE, allocation__borrowed=True
)


def victims_for(allocation: Allocation, *, quotas, over: OverLimit | None, room_found: bool) -> list:
    """Which running allocations must give way before ``allocation`` (realtime) can run; raises Refused when none can make it fit.

    ``over``: its tenant's limit would be crossed (from admission); ``room_found``: a GPU could already hold it.
    Reads only: ``reclaim`` marks them.
    """
    own, freed = _own_victims(allocation, over) if over else ([], [])
    if room_found:
        return own
    ask = ask_of(allocation, quotas)
    gpus = candidate_gpus(ask, with_room=False)
    if freed:  # the GPUs as they will be once the tenant's own work is gone
        gone = {}
        for gpu_id, units, mib in freed:
            u, m = gone.get(gpu_id, (0, 0))
            gone[gpu_id] = (u + units, m + mib)
        gpus = [
            replace(g, allocated_units=g.allocated_units - gone[g.id][0], allocated_mib=g.allocated_mib - gone[g.id][1])
            if g.id in gone
            else g
            for g in gpus
        ]
        if place(ask, gpus) is not None:
            return own
    reclaimed = set(own)
    holders = [h for h in _holders() if h.allocation_id not in reclaimed]
    chosen = choose_victims(ask, gpus, holders)
    return own + ([h.allocation_id for h in chosen[1]] if chosen else [])


def reclaim(allocation: Allocation, victim_ids: list, *, actor) -> list[Allocation]:
    """Mark these victims releasing, preempted by ``allocation`` (a saved realtime request); returns those still running."""
    victims = list(Allocation.objects.select_for_update(of=("self",)).filter(id__in=victim_ids, state=State.RUNNING))
    for victim in victims:
        own = victim.tenant_id == allocation.tenant_id
        transition(
            victim,
            State.RELEASING,
            actor=actor,
            audit=True,
            preempted_by=allocation,
            reason=(reasons.PREEMPTED_WITHIN_LIMIT if own else reasons.PREEMPTED_BY)
            % {"allocation": allocation.id, "tenant": allocation.tenant.slug},
        )
    return victims


def _own_victims(allocation: Allocation, over: OverLimit) -> tuple[list, list]:
    """The tenant's own reclaimable work that frees what ``over`` needs: (allocation ids, their slices as (gpu, units, MiB)).

    Offline work goes first, then borrowed interruptible work; the youngest first within each.
    """
    rows = Slice.objects.filter(
        RECLAIMABLE, active=True, allocation__tenant_id=allocation.tenant_id, allocation__state=State.RUNNING
    ).values_list(
        "allocation_id",
        "allocation__priority",
        "allocation__created_at",
        "allocation__project_id",
        "pool__name",
        "accelerator__model",
        "accelerator_id",
        "compute_units",
        "memory_mib",
    )
    candidates: dict = {}
    for allocation_id, priority, created_at, project_id, pool, model, gpu_id, units, mib in rows:
        entry = candidates.setdefault(allocation_id, {"rank": (RECLAIM_ORDER[priority], -created_at.timestamp()), "slices": []})
        entry["slices"].append((project_id, pool, model, gpu_id, units, mib))
    needs = [(quota, dict(need)) for quota, need in over.needs]
    reclaimable = _zero_like(needs)
    victims, freed = [], []
    for allocation_id, entry in sorted(candidates.items(), key=lambda item: item[1]["rank"]):
        gives = [_under(quota, entry["slices"]) for quota, _ in needs]
        for i, give in enumerate(gives):
            for d in DIMENSIONS:
                reclaimable[i][d] += give[d]
        if any(need[d] > 0 and give[d] > 0 for (_, need), give in zip(needs, gives) for d in DIMENSIONS):
            victims.append(allocation_id)
            freed += [(gpu_id, units, mib) for *_, gpu_id, units, mib in entry["slices"]]
            for (_, need), give in zip(needs, gives):
                for d in DIMENSIONS:
                    need[d] -= give[d]
        if all(v <= 0 for _, need in needs for v in need.values()):
            return victims, freed
    dimension = over.extra["dimension"]
    raise Refused(
        reasons.NOT_RECLAIMABLE % {"detail": over.detail, "reclaimable": reclaimable[0][dimension]},
        code="quota_exceeded",
        **{k: v for k, v in over.extra.items() if k != "code"},
    )


def _under(quota, slices) -> dict:
    """What these slices hold under ``quota``, per dimension."""
    held = dict.fromkeys(DIMENSIONS, 0)
    for project_id, pool, model, _, units, mib in slices:
        if applies(quota, project_id=project_id, pool_name=pool, accelerator_model=model):
            held["compute_units"] += units
            held["memory_mib"] += mib
            held["slices"] += 1
    return held


def _zero_like(needs) -> list[dict]:
    return [dict.fromkeys(DIMENSIONS, 0) for _ in needs]


def _holders() -> list[Holder]:
    """Allocations realtime work may reclaim on the GPUs: offline ones, and interruptible ones running on borrowed capacity."""
    slices = Slice.objects.filter(RECLAIMABLE, active=True, allocation__state=State.RUNNING).values_list(
        "allocation_id", "allocation__priority", "allocation__created_at", "accelerator_id", "compute_units", "memory_mib"
    )
    by_allocation: dict = {}
    for allocation_id, priority, created_at, gpu_id, units, mib in slices:
        entry = by_allocation.setdefault(allocation_id, [priority, created_at.timestamp(), []])
        entry[2].append((gpu_id, units, mib))
    return [Holder(a, p, c, tuple(s)) for a, (p, c, s) in by_allocation.items()]
