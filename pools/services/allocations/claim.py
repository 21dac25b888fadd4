"""
Claiming: a ``claiming`` allocation's slices are claimed on their agents,
outside any transaction and lock, and it runs once every one is held.

Nothing is left on an agent that oCenter does not hold active:

- a claim that times out or fails is settled by asking the agent whether it
  holds it (the answer may have been lost on the way back);
- when the allocation fails, every claim it may have made is deleted;
- a release that comes while claims are in flight leaves the deleting to
  the claimer, which does it after its last claim: no claim reaches an
  agent after its release (release.py).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop as N_

from ocenter import reasons
from ocenter.errors import Refused
from ocenter.lib.rows import guarded
from pools.agent_client import AgentClient, AgentConflict, AgentError, AgentUnreachable, PoolClients, with_retries
from pools.models import MAX_ARRAY_MEMBERS, Allocation, Slice
from pools.selectors import tenant_usage
from pools.services.allocations.history import announce, moved, transition
from pools.services.allocations.release import release_finish
from pools.services.allocations.room import free, try_place
from tenants.models import Tenant
from tenants.selectors import tenant_quotas

log = logging.getLogger(__name__)
State = Allocation.State
# Placements tried after agents answered 409 (the GPU could not hold the slice after all).
MAX_PLACEMENTS = 3


def allocation_claim(*, allocation_id, actor=None, placed: tuple[Allocation, list[Slice]] | None = None) -> Allocation:
    """Claim every slice of a ``claiming`` allocation on its agents; running when all are held.

    A 409 frees the room and places again elsewhere; an agent that stays
    down fails the allocation. Either way no claim is left on any agent.
    ``placed``: the allocation and its slices as the request that just placed
    them holds them (nothing to read again).
    """
    if placed is not None:
        allocation, slices = placed
    else:
        allocation = Allocation.objects.select_related("tenant").get(id=allocation_id)
        if allocation.state != State.CLAIMING:
            return allocation
        slices = list(allocation.slices.select_related("accelerator", "pool").filter(active=True))
    clients, answers, problem = PoolClients(), {}, None
    for s in slices:
        try:
            answers[s.id] = _claim(clients(s.pool), s, allocation)
        except ValueError as exc:  # the pool token cannot be read back (encryption keys changed)
            problem = AgentError(f"cannot use the pool token of {s.pool.name}: {exc}")
        except AgentError as exc:
            problem = exc
        if problem is not None:
            failed = s
            break
    if problem is None:
        return _run(allocation, slices, answers, clients, actor=actor)

    # Undo, so nothing is left held on an agent: what was claimed, and the slice that failed
    # when no answer came (the claim may have been made) and the agent could not be asked.
    maybe_held = [s for s in slices if s.id in answers]
    if isinstance(problem, AgentUnreachable):
        maybe_held.append(failed)
    kept = _undo(maybe_held, clients)
    with transaction.atomic():
        Tenant.objects.select_for_update(of=("self",)).get(id=allocation.tenant_id)
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation_id)
        if allocation.state == State.CLAIMING:
            # A claim that could not be undone keeps its slice and room until the reconciler has released it.
            free([s for s in slices if s not in kept])
            _after_failure(allocation, problem, failed, actor=actor, place_again=not kept)
    if allocation.state == State.RELEASING:
        return release_finish(allocation=allocation, final_state=State.RELEASED, actor=actor)
    if allocation.state == State.CLAIMING:
        return allocation_claim(allocation_id=allocation.id, actor=actor)
    return allocation


def allocations_claim(*, placed: list[tuple[Allocation, list[Slice]]], actor=None) -> list[Allocation]:
    """Claim the slices of several ``claiming`` allocations just placed (a job array's): one call a pool.

    Those whose claims all came back held run; the others are claimed one by
    one (``allocation_claim``), which settles what the batch may have held and
    places them again, queues or fails them as for any request.
    """
    clients, by_pool, claims = PoolClients(), {}, {}
    for allocation, slices in placed:
        for s in slices:
            by_pool.setdefault(s.pool.id, []).append((allocation, s))
    for group in by_pool.values():
        body = [{"id": str(s.id), "gpu_uuid": s.accelerator.uuid, "compute_units": s.compute_units, "memory_mib": s.memory_mib,
                 "labels": _labels(allocation)} for allocation, s in group]  # fmt: skip
        for start in range(0, len(body), MAX_ARRAY_MEMBERS):  # as many as one batch call carries
            with contextlib.suppress(AgentError, ValueError):  # each is claimed on its own below, which settles what this may have held
                claims.update(clients(group[0][1].pool).claim_many(body[start : start + MAX_ARRAY_MEMBERS]))
    return [
        _run(allocation, slices, {s.id: claims[str(s.id)] for s in slices}, clients, actor=actor)
        if all(str(s.id) in claims for s in slices)
        else allocation_claim(allocation_id=allocation.id, actor=actor, placed=(allocation, slices))
        for allocation, slices in placed
    ]


def _after_failure(allocation: Allocation, problem: Exception, failed: Slice, *, actor, place_again: bool):
    """A claim failed and its room is given back: place again after a 409, else queue or fail."""
    if place_again and isinstance(problem, AgentConflict) and allocation.claim_attempts < MAX_PLACEMENTS:
        attempts = allocation.claim_attempts + 1
        usage = tenant_usage([allocation.tenant_id]).get(allocation.tenant_id, [])
        try:
            placed = try_place(allocation, usage=usage, quotas=tenant_quotas(allocation.tenant_id), exclude=[failed.accelerator_id])
        except Refused as exc:
            placed, problem = None, exc
        if placed:
            transition(allocation, State.CLAIMING, actor=actor, reason=reasons.PLACED_AGAIN % {"problem": problem},
                       claim_attempts=attempts, borrowed=allocation.borrowed)  # fmt: skip
        else:
            transition(allocation, State.QUEUED, actor=actor, reason=reasons.WAITING_AFTER_REFUSAL % {"problem": problem},
                       claim_attempts=attempts)  # fmt: skip
    else:
        transition(
            allocation,
            State.FAILED,
            actor=actor,
            audit=True,
            ended_at=timezone.now(),
            reason=reasons.COULD_NOT_CLAIM % {"pool": failed.pool.name, "problem": problem},
        )


def _claim(client: AgentClient, s: Slice, allocation: Allocation) -> dict:
    """Claim one slice (idempotent by its id); a claim whose answer never came is settled by asking the agent."""
    try:
        return with_retries(
            client.claim,
            s.id,
            gpu_uuid=s.accelerator.uuid,
            compute_units=s.compute_units,
            memory_mib=s.memory_mib,
            labels=_labels(allocation),
        )
    except AgentUnreachable as exc:  # no answer: the claim may have been made, and its answer lost
        try:
            held = with_retries(client.claimed, s.id)
        except AgentError:
            raise exc from None  # cannot tell: the caller undoes it, in case it is held
        if held is None:
            raise
        log.info("claim %s on %s was made, though its answer was lost (%s)", s.id, s.pool.name, exc)
        return held


def _labels(allocation: Allocation) -> dict:
    """What a claim carries to its agent: the request's labels, and whose it is."""
    return {**allocation.labels, "allocation": str(allocation.id), "tenant": allocation.tenant.slug}


def _run(allocation: Allocation, slices: list[Slice], answers: dict, clients: PoolClients, *, actor) -> Allocation:
    """Every slice is claimed (``answers``: the agents' answer for each): the allocation runs, unless it was moved on meanwhile.

    One compare-and-set: it runs only if it is still claiming with the
    placement these claims were made for. Every change of its slices (placed
    again after a 409, failed, released) changes its state or its
    ``claim_attempts``, so a racing claimer of the same allocation (the
    reconciler, after a crash) cannot run it on other slices than it claimed.
    """
    now = timezone.now()
    attempts = allocation.claim_attempts
    for s in slices:
        s.env, s.launch = answers[s.id].get("env", {}), answers[s.id].get("launch", {})
        s.started_at = s.started_at or now
    expires = now + timedelta(seconds=allocation.lease_seconds) if allocation.lease_seconds else None
    rows = moved(allocation, State.RUNNING, actor=actor, reason=N_("all slices claimed"), started_at=now, expires_at=expires)
    claiming = Allocation.objects.filter(id=allocation.id, state=State.CLAIMING, claim_attempts=attempts)
    values = {"state": State.RUNNING, "reason": allocation.reason, "started_at": now, "expires_at": expires, "updated_at": now}
    if guarded(claiming, values, rows=rows, sets=[(slices, ["env", "launch", "started_at"])]):
        announce(rows)
        allocation.keep_slices(slices)
        return allocation
    allocation = Allocation.objects.select_related("tenant").get(id=allocation.id)
    if allocation.state == State.RELEASING:
        # Released while its claims were in flight: the release left them to us (release.py).
        return release_finish(allocation=allocation, final_state=State.RELEASED, actor=actor)
    # The slices that still stand for this allocation's claims: a 409 elsewhere may have placed it again.
    live = set(allocation.slices.filter(active=True).values_list("id", flat=True)) if allocation.is_active else set()
    _undo([s for s in slices if s.id not in live], clients)
    return allocation


def _undo(slices: list[Slice], clients: PoolClients) -> list[Slice]:
    """Delete these claims on their agents (deleting one never made is not an error); returns those it could not.

    One call a pool (``release_many``); a claim it did not answer for is kept, for the reconciler.
    """
    by_pool: dict = {}
    for s in slices:
        by_pool.setdefault(s.pool.id, []).append(s)
    kept = []
    for group in by_pool.values():
        try:
            answered = with_retries(clients(group[0].pool).release_many, [s.id for s in group])
        except (AgentError, ValueError):
            answered = set()
        for s in group:
            if str(s.id) not in answered:
                log.warning("could not undo claim %s on %s; the reconciler will release it", s.id, s.pool.name)
                kept.append(s)
    return kept
