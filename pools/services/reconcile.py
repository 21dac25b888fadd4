"""
Reconciliation: make oCenter and one agent agree.

- A claim on the agent that oCenter does not hold active is an orphan: released.
- A running allocation whose claim the agent lost is failed, and its owner told.
- A claiming allocation left by a crash is finished (all claims held) or undone.
- A releasing allocation is released again until the agent confirms.
- A slice an ended allocation still holds (its claim could not be undone when
  it failed) is released on the agent, then its room is given back.

Only allocations last changed before the agent was asked are judged, so work
that moved on while we listened is never mistaken for lost; work whose
claimer may still be calling the agent is left alone for ``CLAIM_GRACE``.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from pools.agent_client import AgentClient, AgentError, PoolClients
from pools.models import Allocation, Pool, Slice
from pools.services.allocations.claim import allocation_claim
from pools.services.allocations.history import transition
from pools.services.allocations.release import release_finish
from pools.services.allocations.room import free

log = logging.getLogger(__name__)
State = Allocation.State
# A claim younger than this may still be on its way to the agent.
CLAIM_GRACE = timedelta(seconds=30)


def pool_reconcile(*, pool_id) -> dict:
    """Reconcile one pool; returns what was done. An unreachable agent is left for later."""
    pool = Pool.objects.get(id=pool_id)
    client = AgentClient.for_pool(pool)
    asked_at = timezone.now()
    try:
        held = {c["id"]: c for c in client.allocations()}
    except AgentError as exc:
        return {"skipped": str(exc)}
    counts = {"orphans_released": 0, "lost": 0, "finished": 0, "undone": 0, "released": 0, "leftovers_released": 0}

    known = {str(s.id): s for s in Slice.objects.filter(id__in=list(held)).only("id", "active")}
    for claim_id in held:
        if claim_id not in known or not known[claim_id].active:
            try:
                client.release(claim_id)
                counts["orphans_released"] += 1
            except AgentError:
                log.warning("could not release orphan claim %s on %s", claim_id, pool.name)

    allocations = (
        Allocation.objects.filter(slices__pool=pool, slices__active=True, state__in=Allocation.ACTIVE_STATES, updated_at__lt=asked_at)
        .distinct()
        .prefetch_related("slices")
    )
    settled = asked_at - CLAIM_GRACE
    for allocation in allocations:
        mine = [s for s in allocation.slices.all() if s.active and s.pool_id == pool.id]
        missing = [s for s in mine if str(s.id) not in held]
        if allocation.state == State.RUNNING and missing:
            _fail(allocation, f"the agent of {pool.name} no longer holds slice {missing[0].index} ({missing[0].id})", lost=missing)
            counts["lost"] += 1
        elif allocation.state == State.CLAIMING and allocation.updated_at < settled:
            # A claim interrupted by a crash: try it again; claims are idempotent by id.
            allocation = allocation_claim(allocation_id=allocation.id)
            counts["finished" if allocation.state == State.RUNNING else "undone"] += 1
        elif allocation.state == State.RELEASING and (allocation.started_at or allocation.updated_at < settled):
            # (Released while claiming: its claimer finishes that release, unless it died doing so.)
            final = State.PREEMPTED if allocation.preempted_by_id else State.RELEASED
            if release_finish(allocation=allocation, final_state=final, actor=None).state == final:
                counts["released"] += 1

    for s in Slice.objects.filter(pool=pool, active=True, allocation__state__in=Allocation.ENDED_STATES):
        try:
            client.release(s.id)
        except AgentError:
            continue
        with transaction.atomic():
            if Slice.objects.select_for_update().filter(id=s.id, active=True).exists():  # not freed by a racing reconcile
                free([s])
                counts["leftovers_released"] += 1
    return counts


def _fail(allocation: Allocation, reason: str, *, lost: list[Slice]):
    """The agent lost a claim: release what is left of the allocation elsewhere, free that room, tell the owner.

    A slice whose release fails keeps its room, as a leftover of the failed allocation, until its pool is reconciled.
    """
    clients, kept = PoolClients(), []
    for s in allocation.slices.select_related("pool").filter(active=True).exclude(id__in=[s.id for s in lost]):
        try:
            clients(s.pool).release(s.id)
        except (AgentError, ValueError):
            kept.append(s.id)
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state not in Allocation.ACTIVE_STATES:
            return
        free(list(allocation.slices.filter(active=True).exclude(id__in=kept)))
        transition(allocation, State.FAILED, actor=None, audit=True, reason=reason, ended_at=timezone.now())
