"""
Claiming: a ``claiming`` allocation's slices are claimed on their agents,
outside any transaction and lock, and it runs once every one is held.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop as N_

from ocenter.errors import Refused
from pools.agent_client import AgentConflict, AgentError, PoolClients, with_retries
from pools.models import Allocation, Slice
from pools.selectors import tenant_quotas, tenant_usage
from pools.services.allocations.history import transition
from pools.services.allocations.room import free, hold, try_place
from tenants.models import Tenant

log = logging.getLogger(__name__)
State = Allocation.State
# Placements tried after agents answered 409 (the GPU could not hold the slice after all).
MAX_PLACEMENTS = 3


def allocation_claim(*, allocation_id, actor=None) -> Allocation:
    """Claim every slice of a ``claiming`` allocation on its agents; running when all are held.

    A 409 frees the room and places again elsewhere; an agent that stays
    down fails the allocation. Either way no claim is left on any agent.
    """
    allocation = Allocation.objects.select_related("tenant").get(id=allocation_id)
    if allocation.state != State.CLAIMING:
        return allocation
    slices = list(allocation.slices.select_related("accelerator", "pool").filter(active=True))
    clients, envs, claimed, problem = PoolClients(), {}, [], None
    for s in slices:
        try:
            client = clients(s.pool)
        except ValueError as exc:  # the pool token cannot be read back (encryption keys changed)
            problem = AgentError(f"cannot use the pool token of {s.pool.name}: {exc}")
            break
        try:
            body = with_retries(lambda: client.claim(
                s.id, gpu_uuid=s.accelerator.uuid, compute_units=s.compute_units, memory_mib=s.memory_mib,
                labels={"allocation": str(allocation.id), "tenant": allocation.tenant.slug},
            ))
        except AgentError as exc:
            problem = exc
            break
        claimed.append(s)
        envs[s.id] = body.get("env", {})
    if problem is None:
        with transaction.atomic():
            allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation_id)
            if allocation.state == State.CLAIMING:
                now = timezone.now()
                for s in slices:
                    s.env = envs[s.id]
                    s.started_at = s.started_at or now
                Slice.objects.bulk_update(slices, ["env", "started_at"])
                expires = now + timedelta(seconds=allocation.lease_seconds) if allocation.lease_seconds else None
                transition(allocation, State.RUNNING, actor=actor, reason=N_("all slices claimed"), started_at=now, expires_at=expires)
        return allocation

    for s in claimed:  # undo, so nothing is left held on an agent
        try:
            with_retries(lambda: clients(s.pool).release(s.id))
        except AgentError:
            log.warning("could not undo claim %s on %s; the reconciler will release it", s.id, s.pool.name)
    failed_gpu = slices[len(claimed)].accelerator_id
    with transaction.atomic():
        Tenant.objects.select_for_update(of=("self",)).get(id=allocation.tenant_id)
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation_id)
        if allocation.state != State.CLAIMING:
            return allocation
        free(slices)
        if isinstance(problem, AgentConflict) and allocation.claim_attempts < MAX_PLACEMENTS:
            allocation.claim_attempts += 1
            usage = tenant_usage([allocation.tenant_id]).get(allocation.tenant_id, [])
            try:
                placed = try_place(allocation, usage=usage, quotas=tenant_quotas(allocation.tenant_id), exclude=[failed_gpu])
            except Refused as exc:
                placed = None
                problem = exc
            if placed:
                transition(allocation, State.CLAIMING, actor=actor, reason=f"agent refused a GPU ({problem}); placed again")
                hold(allocation, placed)
            else:
                transition(allocation, State.QUEUED, actor=actor, reason=f"waiting for room after the agent refused: {problem}")
        else:
            transition(allocation, State.FAILED, actor=actor, audit=True, ended_at=timezone.now(),
                       reason=f"could not claim on {slices[len(claimed)].pool.name}: {problem}")
    if allocation.state == State.CLAIMING:
        return allocation_claim(allocation_id=allocation.id, actor=actor)
    return allocation
