"""
Allocations: request (admit, place, claim), release, preempt, queue drain,
lease expiry. The console, the portal, the API and Celery all call these.

Concurrency, said out loud:

- A tenant's admissions are serialized by a lock on its tenant row, so two
  requests racing for the last unit of quota see each other's usage.
- Candidates come from this process's view of the fleet (pools.fleet),
  which may be seconds old; the database is the authority. A GPU's room is
  taken by a conditional UPDATE that adds to its counters only while they
  stay within the GPU and the GPU is still placeable (healthy, live pool,
  node not drained), skipping GPUs a racing request is taking; the loser
  of a race places again past them.
- The allocation and its slices are committed as ``claiming`` before any
  agent is called, and no lock is held across that call: a crash at any
  point leaves a record the reconciler can finish or undo.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_noop as N_  # stored in English, shown translated

from ocenter.admission import REALTIME, AdmissionRequest, SliceAsk, UsageRow, run_admission_checks
from ocenter.audit import actor_label, audit_record
from ocenter.errors import DomainError, Refused
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from pools.agent_client import AgentClient, AgentConflict, AgentError, AgentUnreachable
from pools.models import Accelerator, Allocation, AllocationEvent, Pool, Slice
from pools.placement import Ask, GpuState, Holder, choose_victims, place, ranked
from pools.fleet import candidate_limit, fleet
from pools.selectors import LIVE_POOL_STATUSES, allowed_scopes, candidate_gpus, tenant_quotas
from tenants.models import Tenant
from tenants.quotas import quota_usage

log = logging.getLogger(__name__)

State = Allocation.State
# Seconds to wait before the 2nd, 3rd and 4th try of an agent call that timed out or failed.
AGENT_BACKOFF = (0.1, 0.4, 1.2)
MAX_PLACEMENTS = 3
# Tries at taking room when racing requests keep taking the chosen GPUs first.
MAX_RESERVATIONS = 8


class _RoomTaken(Exception):
    """Another request took (or is taking) the room on a chosen GPU first."""

    def __init__(self, gpu_ids=()):
        super().__init__()
        self.gpu_ids = set(gpu_ids)


# --- history -----------------------------------------------------------------

def _transition(allocation: Allocation, to_state: str, *, actor, reason: str = "", audit: bool = False, via: str = "", **fields):
    """Move ``allocation`` to ``to_state``, record it, and tell its tenant and staff once committed.

    ``via``: a state it passed through on the way, recorded as its own step
    (a new request placed at once was queued, then claiming).
    """
    from_state = allocation.state if allocation.pk and not allocation._state.adding else ""
    steps = [(from_state, via, N_("requested")), (via, to_state, reason)] if via else [(from_state, to_state, reason)]
    allocation.state = to_state
    allocation.reason = reason[:500]
    for name, value in fields.items():
        setattr(allocation, name, value)
    allocation.save()
    label = actor_label(actor)
    AllocationEvent.objects.bulk_create([
        AllocationEvent(allocation=allocation, from_state=a, to_state=b, actor_label=label, reason=why[:500]) for a, b, why in steps
    ])
    if audit:
        audit_record(actor=actor, action=f"allocation.{to_state}", obj=allocation, tenant_id=allocation.tenant_id,
                     changes={"state": [from_state, to_state], "reason": reason})
    at = timezone.now().isoformat()
    for a, b, why in steps:
        publish_on_commit(
            [STAFF_GROUP, tenant_group(allocation.tenant_id)],
            {"kind": "allocation.updated", "allocation": str(allocation.id), "tenant": str(allocation.tenant_id),
             "from": a, "state": b, "reason": why[:500], "at": at},
        )


# --- what is held --------------------------------------------------------------

def tenant_usage(*, tenant_ids) -> dict:
    """``{tenant_id: [UsageRow]}``: the active slices of these tenants, summed (settings.OCENTER_USAGE_SOURCE)."""
    rows = (
        Slice.objects.filter(active=True, allocation__tenant_id__in=tenant_ids)
        .values("allocation__tenant_id", "allocation__project_id", "pool__name", "accelerator__model", "allocation__priority")
        .annotate(units=Sum("compute_units"), mib=Sum("memory_mib"), slices=Count("id"))
        .order_by()
    )
    usage: dict = {}
    for r in rows:
        usage.setdefault(r["allocation__tenant_id"], []).append(
            UsageRow(r["allocation__project_id"], r["pool__name"], r["accelerator__model"], r["allocation__priority"],
                     r["units"], r["mib"], r["slices"])
        )
    return usage


def _ask(allocation: Allocation, quotas) -> Ask:
    """What placement needs to know of ``allocation``; ``quotas`` (None: anywhere) say where the tenant may place."""
    return Ask(
        count=allocation.count, compute_units=allocation.compute_units, memory_mib=allocation.memory_mib,
        policy=allocation.policy, vendor=allocation.vendor, model=allocation.accelerator_model,
        pool=allocation.pool_name, region=allocation.region, allowed=None if quotas is None else allowed_scopes(quotas),
    )


def _admit(allocation: Allocation, asks: list[SliceAsk], usage: list):
    run_admission_checks(AdmissionRequest(
        tenant_id=allocation.tenant_id, project_id=allocation.project_id, priority=allocation.priority,
        slices=asks, usage=usage, lease_seconds=allocation.lease_seconds,
    ))


def _is_borrowed(allocation: Allocation, asks: list[SliceAsk], usage: list, quotas) -> bool:
    """Whether this work goes beyond the tenant's guarantee (and so can be reclaimed)."""
    if allocation.priority == REALTIME:
        return False
    asked = sum(a.compute_units for a in asks)
    for quota in quotas:
        if any(quota.pool_name in ("", a.pool_name) and quota.accelerator_model in ("", a.accelerator_model) for a in asks):
            used = quota_usage(quota, usage).used["compute_units"]
            if used + asked > quota.guarantee_compute_units:
                return True
    return False


# Room, and (since candidates come from this process's view of the fleet, which may be a second
# old) everything else that makes a GPU placeable, checked again where the room is taken.
_ROOM = """allocated_compute_units <= 100 - %(units)s AND memory_mib >= allocated_memory_mib + %(mib)s
           AND health = 'healthy' AND gone_at IS NULL
           AND pool_id IN (SELECT id FROM pools_pool WHERE status IN ('healthy', 'degraded') AND NOT draining)
           AND node_id NOT IN (SELECT id FROM pools_node WHERE draining)"""
_ADD_ROOM = """UPDATE pools_accelerator SET allocated_compute_units = allocated_compute_units + %(units)s,
                                   allocated_memory_mib = allocated_memory_mib + %(mib)s"""
# Every GPU of a gang (those another request is updating are skipped, not waited for).
_TAKE_ALL_SQL = f"""{_ADD_ROOM}
     WHERE id IN (SELECT id FROM pools_accelerator WHERE id = ANY(%(ids)s) AND {_ROOM} FOR UPDATE SKIP LOCKED)
    RETURNING id"""
# The first of the ranked GPUs that has room and that no other request is updating.
_TAKE_FIRST_SQL = f"""{_ADD_ROOM}
     WHERE id = (SELECT id FROM pools_accelerator WHERE id = ANY(%(ids)s) AND {_ROOM}
                  ORDER BY array_position(%(ids)s::bigint[], id) LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id"""


def _add_room(allocation: Allocation, gpu_id) -> bool:
    """SQLite (one writer at a time, nothing locked to skip): add to one GPU's counters if it has the room."""
    return bool(Accelerator.objects.filter(
        id=gpu_id, allocated_compute_units__lte=100 - allocation.compute_units,
        memory_mib__gte=F("allocated_memory_mib") + allocation.memory_mib,
        health=Accelerator.Health.HEALTHY, gone_at=None, pool__status__in=LIVE_POOL_STATUSES, pool__draining=False,
        node__draining=False,
    ).update(
        allocated_compute_units=F("allocated_compute_units") + allocation.compute_units,
        allocated_memory_mib=F("allocated_memory_mib") + allocation.memory_mib,
    ))


def _take_sql(sql: str, allocation: Allocation, ids: list) -> set:
    with connection.cursor() as cursor:
        cursor.execute(sql, {"units": allocation.compute_units, "mib": allocation.memory_mib, "ids": ids})
        return {row[0] for row in cursor.fetchall()}


def _take_first(allocation: Allocation, ranked: list[GpuState]) -> GpuState | None:
    """Take one slice's room on the best of ``ranked`` that has it and that no other request is taking now.

    Racing requests rank the same GPU first (binpack sends them all to the
    fullest): each gets the next one in one statement, instead of queueing
    behind the first's row lock or trying again and again.
    """
    if connection.vendor == "postgresql":
        taken = _take_sql(_TAKE_FIRST_SQL, allocation, [g.id for g in ranked])
        return next((g for g in ranked if g.id in taken), None)
    return next((g for g in ranked if _add_room(allocation, g.id)), None)


def _take_all(allocation: Allocation, chosen: list[GpuState]):
    """Take the room on every GPU of a gang, or raise _RoomTaken (the caller's savepoint undoes the rest)."""
    ids = [gpu.id for gpu in chosen]
    if connection.vendor == "postgresql":
        taken = _take_sql(_TAKE_ALL_SQL, allocation, ids)
    else:
        taken = {gpu_id for gpu_id in ids if _add_room(allocation, gpu_id)}
    if len(taken) < len(ids):
        raise _RoomTaken(set(ids) - taken)


def _hold(allocation: Allocation, chosen: list[GpuState]):
    """Record the slices of a saved allocation on the GPUs whose room it took (and, once committed, in this process's view)."""
    for gpu in chosen:
        _on_commit_add(gpu.id, allocation.compute_units, allocation.memory_mib)
    Slice.objects.bulk_create([
        Slice(allocation=allocation, accelerator_id=gpu.id, pool_id=gpu.pool_id, index=i,
              compute_units=allocation.compute_units, memory_mib=allocation.memory_mib)
        for i, gpu in enumerate(chosen)
    ])


def _on_commit_add(gpu_id, units: int, mib: int):
    transaction.on_commit(lambda: fleet.add(gpu_id, units, mib))


def _free(slices):
    """Give back the room of these slices (they no longer hold anything on their GPUs)."""
    for s in slices:
        if s.active:
            Accelerator.objects.filter(id=s.accelerator_id).update(
                allocated_compute_units=F("allocated_compute_units") - s.compute_units,
                allocated_memory_mib=F("allocated_memory_mib") - s.memory_mib,
            )
            _on_commit_add(s.accelerator_id, -s.compute_units, -s.memory_mib)
            s.active = False
    Slice.objects.filter(id__in=[s.id for s in slices]).update(active=False)


def _try_place(allocation: Allocation, *, usage: list, quotas, exclude=()) -> list[GpuState] | None:
    """Place ``allocation`` and take the room (under its tenant's lock): the GPUs chosen, or None.

    Candidates come from this process's view of the fleet (pools.fleet); a
    view that finds no room is read again before the answer is "none".
    The caller saves the allocation and then holds the slices (``_hold``).
    Raises Refused when the quota or another admission check says no.
    """
    ask = _ask(allocation, quotas)
    exclude, fresh = set(exclude), False
    for _ in range(MAX_RESERVATIONS):
        candidates = fleet.best(ask, exclude=exclude, limit=candidate_limit(ask), fresh=fresh)
        chosen = place(ask, candidates)
        if chosen is None:
            # The best few could not hold it (a gang across pools, say): look at every GPU with room.
            candidates = fleet.best(ask, exclude=exclude)
            chosen = place(ask, candidates)
        if chosen is None:
            if fresh:
                return None
            fresh = True  # perhaps only this process's view is out of date
            continue
        asks = [SliceAsk(g.pool, g.model, allocation.compute_units, allocation.memory_mib) for g in chosen]
        _admit(allocation, asks, usage)
        if len(chosen) == 1:
            # Any GPU of the pool and model just admitted will do, best first.
            best = chosen[0]
            alike = [g for g in ranked(ask, candidates) if (g.pool, g.model) == (best.pool, best.model)]
            gpu = _take_first(allocation, alike)
            if gpu is None:
                exclude |= {g.id for g in alike}  # taken by racing requests (or gone since the view was read)
                continue
            chosen = [gpu]
        else:
            try:
                with transaction.atomic():  # a gang: all its GPUs or none
                    _take_all(allocation, chosen)
            except _RoomTaken as taken:
                exclude |= taken.gpu_ids  # someone else's now: look past them
                continue
        allocation.borrowed = _is_borrowed(allocation, asks, usage, quotas)
        return chosen
    return None


def _check_admissible_somewhere(allocation: Allocation, usage: list):
    """Refuse now a request no placement could ever admit (over its quota anywhere, or no GPU of its kind)."""
    ask = _ask(allocation, None)
    # A drained pool will take work again: requests for it wait rather than being refused.
    scopes = sorted({(g.pool, g.model) for g in candidate_gpus(ask, with_room=False, draining_too=True) if g.memory_mib >= ask.memory_mib})
    if not scopes:
        raise Refused(
            "no healthy GPU in a live pool matches this request (model, vendor, pool, region and memory per slice); change the constraints",
            code="no_matching_gpu",
        )
    refusal = None
    for pool, model in scopes:
        try:
            _admit(allocation, [SliceAsk(pool, model, allocation.compute_units, allocation.memory_mib)] * allocation.count, usage)
            return
        except Refused as exc:
            refusal = refusal or exc
    raise refusal


def _holders(ask: Ask) -> list[Holder]:
    """Allocations realtime work may reclaim: offline ones, and interruptible ones running on borrowed capacity."""
    slices = (
        Slice.objects.filter(active=True, allocation__state=State.RUNNING)
        .filter(Q(allocation__priority=Allocation.Priority.OFFLINE) | Q(allocation__priority=Allocation.Priority.INTERRUPTIBLE, allocation__borrowed=True))
        .values_list("allocation_id", "allocation__priority", "allocation__created_at", "accelerator_id", "compute_units", "memory_mib")
    )
    by_allocation: dict = {}
    for allocation_id, priority, created_at, gpu_id, units, mib in slices:
        entry = by_allocation.setdefault(allocation_id, [priority, created_at.timestamp(), []])
        entry[2].append((gpu_id, units, mib))
    return [Holder(a, p, c, tuple(s)) for a, (p, c, s) in by_allocation.items()]


# --- request -------------------------------------------------------------------

def allocation_request(*, actor, tenant: Tenant, project, count: int, compute_units: int, memory_mib: int,
                       priority: str = Allocation.Priority.OFFLINE, policy: str = Allocation.Policy.BINPACK,
                       vendor: str = "", accelerator_model: str = "", pool_name: str = "", region: str = "",
                       lease_seconds: int | None = None, labels: dict | None = None, requeue_on_preempt: bool = False,
                       idempotency_key: str | None = None) -> tuple[Allocation, bool]:
    """Admit, place and claim a request; return (allocation, created).

    With no room it waits, queued; a realtime request within its guarantee
    reclaims offline and borrowed work instead. A retried request with the
    same idempotency key returns the first allocation.
    """
    victims = []
    with transaction.atomic():
        # One tenant's admissions at a time: the quota's last unit goes to one request only.
        tenant = Tenant.objects.select_for_update(of=("self",)).get(id=tenant.id)
        if idempotency_key:
            existing = Allocation.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing, False
        if not tenant.is_active:
            raise Refused(f"{tenant.slug} is suspended: it cannot start new work")
        allocation = Allocation(
            tenant=tenant, project=project, created_by=actor if getattr(actor, "pk", None) else None,
            count=count, compute_units=compute_units, memory_mib=memory_mib, priority=priority, policy=policy,
            vendor=vendor, accelerator_model=accelerator_model, pool_name=pool_name, region=region,
            lease_seconds=lease_seconds, labels=labels or {}, requeue_on_preempt=requeue_on_preempt,
            idempotency_key=idempotency_key or None,
        )
        usage = tenant_usage(tenant_ids=[tenant.id]).get(tenant.id, [])
        quotas = tenant_quotas(tenant.id)
        chosen = _try_place(allocation, usage=usage, quotas=quotas)
        if chosen:
            _transition(allocation, State.CLAIMING, actor=actor, via=State.QUEUED, reason=N_("placed"))
            _hold(allocation, chosen)
        else:
            # Nothing is stored yet: a request no GPU could ever take is an input error, not a wait.
            _check_request_shape(count=count, compute_units=compute_units, memory_mib=memory_mib, vendor=vendor,
                                accelerator_model=accelerator_model, pool_name=pool_name, region=region)
            _check_admissible_somewhere(allocation, usage)
            _transition(allocation, State.QUEUED, actor=actor, reason=N_("requested"))
            victims = _preempt_for(allocation, actor=actor, quotas=quotas) if priority == REALTIME else []
            # Still queued, as recorded: only the reason it waits is new (and is read when the event is shown).
            allocation.reason = (f"making room: reclaiming {len(victims)} offline or borrowed allocation(s)" if victims
                                 else N_("waiting for room: no GPU that matches has the compute and memory free"))
            allocation.save(update_fields=["reason", "updated_at"])
        audit_record(actor=actor, action="allocation.request", obj=allocation, tenant_id=tenant.id,
                     changes={"count": count, "compute_units": compute_units, "memory_mib": memory_mib, "priority": priority})
    for victim in victims:
        _finish_release(victim, final_state=State.PREEMPTED, actor=actor)
    if victims:
        queue_drain()
        allocation.refresh_from_db()
    elif allocation.state == State.CLAIMING:
        allocation = allocation_claim(allocation_id=allocation.id, actor=actor)
    return allocation, True


def _preempt_for(allocation: Allocation, *, actor, quotas) -> list[Allocation]:
    """Mark the fewest, youngest reclaimable allocations that make room for a realtime request as releasing."""
    ask = _ask(allocation, quotas)
    chosen = choose_victims(ask, candidate_gpus(ask, with_room=False), _holders(ask))
    if chosen is None:
        return []
    _, holders = chosen
    victims = list(Allocation.objects.select_for_update(of=("self",)).filter(id__in=[h.allocation_id for h in holders], state=State.RUNNING))
    for victim in victims:
        _transition(victim, State.RELEASING, actor=actor, audit=True, preempted_by=allocation,
                    reason=f"preempted by realtime allocation {allocation.id} of {allocation.tenant.slug}")
    return victims


# --- claim ---------------------------------------------------------------------

def _agent_call(call):
    """Retry a timed-out or failed agent call with backoff; a 409 or a 4xx is an answer, not retried."""
    for delay in (*AGENT_BACKOFF, None):
        try:
            return call()
        except AgentConflict:
            raise
        except AgentError as exc:
            if not isinstance(exc, AgentUnreachable) and exc.status and exc.status < 500:
                raise
            if delay is None:
                raise
            time.sleep(delay)


def _client(pool: Pool, cache: dict) -> AgentClient:
    if pool.id not in cache:
        cache[pool.id] = AgentClient.for_pool(pool)
    return cache[pool.id]


def allocation_claim(*, allocation_id, actor=None) -> Allocation:
    """Claim every slice of a ``claiming`` allocation on its agents; running when all are held.

    A 409 frees the room and places again elsewhere; an agent that stays
    down fails the allocation. Either way no claim is left on any agent.
    """
    allocation = Allocation.objects.select_related("tenant").get(id=allocation_id)
    if allocation.state != State.CLAIMING:
        return allocation
    slices = list(allocation.slices.select_related("accelerator", "pool").filter(active=True))
    clients, envs, claimed, problem = {}, {}, [], None
    for s in slices:
        try:
            client = _client(s.pool, clients)
        except ValueError as exc:  # the pool token cannot be read back (encryption keys changed)
            problem = AgentError(f"cannot use the pool token of {s.pool.name}: {exc}")
            break
        try:
            body = _agent_call(lambda: client.claim(
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
                _transition(allocation, State.RUNNING, actor=actor, reason=N_("all slices claimed"), started_at=now, expires_at=expires)
        return allocation

    for s in claimed:  # undo, so nothing is left held on an agent
        try:
            _agent_call(lambda: _client(s.pool, clients).release(s.id))
        except AgentError:
            log.warning("could not undo claim %s on %s; the reconciler will release it", s.id, s.pool.name)
    failed_gpu = slices[len(claimed)].accelerator_id
    with transaction.atomic():
        Tenant.objects.select_for_update(of=("self",)).get(id=allocation.tenant_id)
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation_id)
        if allocation.state != State.CLAIMING:
            return allocation
        _free(slices)
        if isinstance(problem, AgentConflict) and allocation.claim_attempts < MAX_PLACEMENTS:
            allocation.claim_attempts += 1
            usage = tenant_usage(tenant_ids=[allocation.tenant_id]).get(allocation.tenant_id, [])
            try:
                placed = _try_place(allocation, usage=usage, quotas=tenant_quotas(allocation.tenant_id), exclude=[failed_gpu])
            except Refused as exc:
                placed = None
                problem = exc
            if placed:
                _transition(allocation, State.CLAIMING, actor=actor, reason=f"agent refused a GPU ({problem}); placed again")
                _hold(allocation, placed)
            else:
                _transition(allocation, State.QUEUED, actor=actor, reason=f"waiting for room after the agent refused: {problem}")
        else:
            _transition(allocation, State.FAILED, actor=actor, audit=True, ended_at=timezone.now(),
                        reason=f"could not claim on {slices[len(claimed)].pool.name}: {problem}")
    if allocation.state == State.CLAIMING:
        return allocation_claim(allocation_id=allocation.id, actor=actor)
    return allocation


# --- release -------------------------------------------------------------------

def allocation_release(*, actor, allocation: Allocation, reason: str = N_("released by its owner")) -> Allocation:
    """Release an allocation: dequeue it, or give its slices back. Releasing twice is not an error."""
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state in Allocation.ENDED_STATES or allocation.state == State.RELEASING:
            return allocation
        if allocation.state == State.QUEUED:
            _transition(allocation, State.RELEASED, actor=actor, audit=True, reason=reason, ended_at=timezone.now())
            return allocation
        _transition(allocation, State.RELEASING, actor=actor, audit=True, reason=reason)
    return _finish_release(allocation, final_state=State.RELEASED, actor=actor)


def _finish_release(allocation: Allocation, *, final_state: str, actor) -> Allocation:
    """Delete the claims of a ``releasing`` allocation on its agents, then free its room.

    An agent that does not answer leaves it ``releasing``: the reconciler
    tries again, and the room stays taken until the agent confirms.
    """
    slices = list(allocation.slices.select_related("pool").filter(active=True))
    clients = {}
    for s in slices:
        try:
            _agent_call(lambda: _client(s.pool, clients).release(s.id))
        except AgentError as exc:
            log.warning("release of %s on %s failed (%s); the reconciler will retry", s.id, s.pool.name, exc)
            return allocation
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state != State.RELEASING:
            return allocation
        _free(slices)  # read before the agent calls: only the one who moved it out of releasing gets here
        _transition(allocation, final_state, actor=actor, reason=allocation.reason, ended_at=timezone.now())
        if final_state == State.PREEMPTED and allocation.requeue_on_preempt:
            _requeue(allocation, actor=actor)
        if Allocation.objects.filter(state=State.QUEUED).exists():  # room was freed for someone waiting
            from pools.tasks import drain_queue

            transaction.on_commit(drain_queue.delay)
    return allocation


def _requeue(allocation: Allocation, *, actor) -> Allocation:
    """Put a preempted allocation's request back in the queue, as a new allocation that remembers where it came from."""
    fields = ("tenant_id", "project_id", "created_by_id", "priority", "policy", "count", "compute_units", "memory_mib",
              "vendor", "accelerator_model", "pool_name", "region", "lease_seconds", "labels", "requeue_on_preempt")
    again = Allocation(**{f: getattr(allocation, f) for f in fields}, requeued_from=allocation)
    _transition(again, State.QUEUED, actor=actor, reason=f"requeued after preemption of {allocation.id}")
    return again


def allocation_preempt(*, actor, allocation: Allocation, reason: str = "") -> Allocation:
    """Staff take a running allocation's slices back now (it is requeued if it asked to be)."""
    with transaction.atomic():
        allocation = Allocation.objects.select_for_update(of=("self",)).get(id=allocation.id)
        if allocation.state != State.RUNNING:
            raise DomainError(f"only running work can be preempted; this allocation is {allocation.state}")
        _transition(allocation, State.RELEASING, actor=actor, audit=True,
                    reason=reason or f"preempted by platform staff ({actor_label(actor)})")
    return _finish_release(allocation, final_state=State.PREEMPTED, actor=actor)


def tenant_allocations_release(*, tenant_id, actor=None):
    """Release everything a tenant holds or waits for (it was suspended)."""
    for allocation in Allocation.objects.filter(tenant_id=tenant_id).exclude(state__in=Allocation.ENDED_STATES):
        allocation_release(actor=actor, allocation=allocation, reason=N_("the tenant was suspended"))


def leases_expire(*, now=None) -> int:
    """Release every running allocation whose lease has ended."""
    now = now or timezone.now()
    expired = list(Allocation.objects.filter(state=State.RUNNING, expires_at__lte=now))
    for allocation in expired:
        allocation_release(actor=None, allocation=allocation, reason=N_("its lease ended"))
    return len(expired)


# --- queue ---------------------------------------------------------------------

def queue_drain(*, limit: int = 500) -> int:
    """Place queued requests, in queue order, while there is room; claim those placed. Returns how many started."""
    from pools.selectors import queue_order

    placed = []
    for waiting in queue_order(limit=limit):
        with transaction.atomic():
            Tenant.objects.select_for_update(of=("self",)).get(id=waiting.tenant_id)
            allocation = Allocation.objects.select_for_update(of=("self",), skip_locked=True).filter(id=waiting.id, state=State.QUEUED).first()
            if allocation is None:
                continue
            usage = tenant_usage(tenant_ids=[allocation.tenant_id]).get(allocation.tenant_id, [])
            try:
                chosen = _try_place(allocation, usage=usage, quotas=tenant_quotas(allocation.tenant_id))
            except Refused as exc:
                if allocation.reason != f"waiting for quota: {exc.detail}"[:500]:
                    allocation.reason = f"waiting for quota: {exc.detail}"[:500]
                    allocation.save(update_fields=["reason", "updated_at"])
                continue
            if chosen:
                _transition(allocation, State.CLAIMING, actor=None, reason=N_("placed from the queue"))
                _hold(allocation, chosen)
                placed.append(allocation.id)
    for allocation_id in placed:
        allocation_claim(allocation_id=allocation_id)
    return len(placed)


def _check_request_shape(*, count: int, compute_units: int, memory_mib: int, vendor: str, accelerator_model: str,
                         pool_name: str, region: str):
    """Input errors (raised before anything is stored): name the field and what would be valid.

    Asked only of a request that fits nowhere now: one that was placed was well formed.
    """
    fleet = Accelerator.objects.filter(gone_at=None)
    if pool_name and not Pool.objects.filter(name=pool_name).exists():
        raise DomainError(f"no pool named '{pool_name}'; known: {', '.join(Pool.objects.values_list('name', flat=True))}", field="pool")
    if region and not Pool.objects.filter(region=region).exists():
        raise DomainError(f"no pool in region '{region}'", field="region")
    if vendor and not fleet.filter(vendor__iexact=vendor).exists():
        known = sorted(set(fleet.values_list("vendor", flat=True)))
        raise DomainError(f"no GPU from vendor '{vendor}'; known: {', '.join(known)}", field="vendor")
    if accelerator_model and not fleet.filter(model=accelerator_model).exists():
        known = sorted(set(fleet.values_list("model", flat=True)))
        raise DomainError(f"no GPU of model '{accelerator_model}'; known: {', '.join(known)}", field="accelerator_model")
    matching = fleet
    if vendor:
        matching = matching.filter(vendor__iexact=vendor)
    if accelerator_model:
        matching = matching.filter(model=accelerator_model)
    if pool_name:
        matching = matching.filter(pool__name=pool_name)
    fleet_figures = matching.aggregate(largest=Max("memory_mib"), gpus=Count("id"))
    largest = fleet_figures["largest"] or 0
    if memory_mib > largest:
        raise DomainError(f"memory_mib {memory_mib} is more than any matching GPU has (largest: {largest} MiB)", field="memory_mib")
    if count > fleet_figures["gpus"]:
        raise DomainError(f"count {count} is more than the {fleet_figures['gpus']} matching GPUs", field="count")
