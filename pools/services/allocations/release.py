"""
Releasing: an allocation's claims are deleted on their agents, then its room
is given back. Its owner, its lease, staff (preemption) and a tenant's
suspension all end work here.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop as N_

from ocenter.audit import actor_label
from ocenter.enqueue import enqueue_on_commit
from ocenter.errors import DomainError
from pools.agent_client import AgentError, PoolClients, with_retries
from pools.models import Allocation
from pools.services.allocations.history import transition
from pools.services.allocations.room import free
from pools.tasks import drain_queue

log = logging.getLogger(__name__)
State = Allocation.State


def allocation_release(*, actor, allocation: Allocation, reason: str = N_("released by its owner")) -> Allocation:
    """Release an allocation: dequeue it, or give its slices back. Releasing twice is not an error."""
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state in Allocation.ENDED_STATES or allocation.state == State.RELEASING:
            return allocation
        if allocation.state == State.QUEUED:
            transition(allocation, State.RELEASED, actor=actor, audit=True, reason=reason, ended_at=timezone.now())
            return allocation
        claiming = allocation.state == State.CLAIMING
        transition(allocation, State.RELEASING, actor=actor, audit=True, reason=reason)
    if claiming:
        # Its claimer is still calling the agents: it finishes this release once its last claim is
        # made (see claim.py), so no claim can reach an agent after the release has deleted them.
        return allocation
    return release_finish(allocation=allocation, final_state=State.RELEASED, actor=actor)


def release_finish(*, allocation: Allocation, final_state: str, actor) -> Allocation:
    """Delete the claims of a ``releasing`` allocation on its agents, then free its room.

    An agent that does not answer leaves it ``releasing``: the reconciler
    tries again, and the room stays taken until the agent confirms.
    """
    slices = list(allocation.slices.select_related("pool").filter(active=True))
    clients = PoolClients()
    for s in slices:
        try:
            with_retries(clients(s.pool).release, s.id)
        except AgentError as exc:
            log.warning("release of %s on %s failed (%s); the reconciler will retry", s.id, s.pool.name, exc)
            return allocation
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state != State.RELEASING:
            return allocation
        free(slices)  # read before the agent calls: only the one who moved it out of releasing gets here
        transition(allocation, final_state, actor=actor, reason=allocation.reason, ended_at=timezone.now())
        if final_state == State.PREEMPTED and allocation.requeue_on_preempt:
            _requeue(allocation, actor=actor)
        if Allocation.objects.filter(state=State.QUEUED).exists():  # room was freed for someone waiting
            enqueue_on_commit(drain_queue)
    return allocation


def _requeue(allocation: Allocation, *, actor) -> Allocation:
    """Put a preempted allocation's request back in the queue, as a new allocation that remembers where it came from."""
    fields = ("tenant_id", "created_by_id", *Allocation.ASKED)
    again = Allocation(**{f: getattr(allocation, f) for f in fields}, requeued_from=allocation)
    transition(again, State.QUEUED, actor=actor, reason=f"requeued after preemption of {allocation.id}")
    return again


def allocation_preempt(*, actor, allocation: Allocation, reason: str = "") -> Allocation:
    """Staff take a running allocation's slices back now (it is requeued if it asked to be)."""
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state != State.RUNNING:
            raise DomainError(f"only running work can be preempted; this allocation is {allocation.state}")
        transition(
            allocation, State.RELEASING, actor=actor, audit=True, reason=reason or f"preempted by platform staff ({actor_label(actor)})"
        )
    return release_finish(allocation=allocation, final_state=State.PREEMPTED, actor=actor)


def tenant_allocations_release(*, tenant_id, actor=None):
    """Release everything a tenant holds or waits for (it was suspended: registered with ``ocenter.seams``)."""
    for allocation in Allocation.objects.filter(tenant_id=tenant_id).exclude(state__in=Allocation.ENDED_STATES):
        allocation_release(actor=actor, allocation=allocation, reason=N_("the tenant was suspended"))


def leases_expire(*, now=None) -> int:
    """Release every running allocation whose lease has ended."""
    now = now or timezone.now()
    expired = list(Allocation.objects.filter(state=State.RUNNING, expires_at__lte=now))
    for allocation in expired:
        allocation_release(actor=None, allocation=allocation, reason=N_("its lease ended"))
    return len(expired)
