"""
Releasing: an allocation's claims are deleted on their agents, then its room
is given back. Its owner, its lease, staff (preemption) and a tenant's
suspension all end work here.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop as N_

from ocenter import reasons
from ocenter.audit import actor_label
from ocenter.enqueue import enqueue_on_commit
from ocenter.errors import Conflict, DomainError
from ocenter.lib.rows import guarded
from pools.agent_client import AgentError, PoolClients, with_retries
from pools.models import Allocation, Slice
from pools.services.allocations.history import announce, moved, transition
from pools.services.allocations.room import freed, freed_in_view
from pools.tasks import drain_queue

log = logging.getLogger(__name__)
State = Allocation.State


def allocation_release(*, actor, allocation: Allocation, reason: str = N_("released by its owner")) -> Allocation:
    """Release an allocation: dequeue it, or give its slices back. Releasing twice is not an error.

    Its state moves by compare-and-set from the state read: a request that
    races another for it reads it again and goes by what it finds.
    """
    for _ in range(MAX_RACES):
        if allocation.state in Allocation.ENDED_STATES or allocation.state == State.RELEASING:
            return allocation
        was = allocation.state
        ended = {"ended_at": timezone.now()} if was == State.QUEUED else {}
        to_state = State.RELEASED if was == State.QUEUED else State.RELEASING
        rows = moved(allocation, to_state, actor=actor, audit=True, reason=reason, **ended)
        values = {"state": allocation.state, "reason": allocation.reason, "updated_at": timezone.now(), **ended}
        if guarded(Allocation.objects.filter(id=allocation.id, state=was), values, rows=rows):
            announce(rows)
            break
        allocation = Allocation.objects.select_related("tenant", "project").get(id=allocation.id)  # moved on meanwhile
    else:
        raise Conflict("the allocation keeps changing under this release; try again")
    if was == State.QUEUED:
        return allocation
    if was == State.CLAIMING:
        # Its claimer is still calling the agents: it finishes this release once its last claim is
        # made (see claim.py), so no claim can reach an agent after the release has deleted them.
        return allocation
    held = [s for s in allocation.slices.all() if s.active] if allocation.slices_kept else None
    return release_finish(allocation=allocation, final_state=State.RELEASED, actor=actor, slices=held)


# Tries at moving an allocation that other requests keep moving first.
MAX_RACES = 5


def release_finish(*, allocation: Allocation, final_state: str, actor, slices: list[Slice] | None = None) -> Allocation:
    """Delete the claims of a ``releasing`` allocation on its agents, then free its room.

    An agent that does not answer leaves it ``releasing``: the reconciler
    tries again, and the room stays taken until the agent confirms.
    ``slices``: its active slices with their pools, if read already.
    """
    if slices is None:
        slices = list(allocation.slices.select_related("pool").filter(active=True))
    clients = PoolClients()
    for s in slices:
        try:
            with_retries(clients(s.pool).release, s.id)
        except AgentError as exc:
            log.warning("release of %s on %s failed (%s); the reconciler will retry", s.id, s.pool.name, exc)
            return allocation
    now = timezone.now()
    requeue = final_state == State.PREEMPTED and allocation.requeue_on_preempt
    with transaction.atomic() if requeue else nullcontext():
        rows = moved(allocation, final_state, actor=actor, reason=allocation.reason, ended_at=now)
        for s in slices:
            s.active = False
        # Only the one who moves it out of releasing frees the room: the slices read before the agent calls are its.
        did = guarded(
            Allocation.objects.filter(id=allocation.id, state=State.RELEASING),
            {"state": final_state, "ended_at": now, "updated_at": now},
            rows=rows,
            sets=[(slices, ["active"])],
            adds=freed(slices),
        )
        if not did:
            return Allocation.objects.select_related("tenant", "project").get(id=allocation.id)
        announce(rows)
        freed_in_view(slices)
        if requeue:
            _requeue(allocation, actor=actor)
    if Allocation.objects.filter(state=State.QUEUED).exists():  # room was freed for someone waiting
        enqueue_on_commit(drain_queue)
    return allocation


def _requeue(allocation: Allocation, *, actor) -> Allocation:
    """Put a preempted allocation's request back in the queue, as a new allocation that remembers where it came from."""
    fields = ("tenant_id", "created_by_id", *Allocation.ASKED)
    again = Allocation(**{f: getattr(allocation, f) for f in fields}, requeued_from=allocation)
    transition(again, State.QUEUED, actor=actor, reason=reasons.REQUEUED_AFTER % {"allocation": allocation.id})
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
