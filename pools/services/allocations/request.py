"""
Requests: admit, place and claim; with no room, wait in the queue, or (for
realtime work within its guarantee) reclaim offline and borrowed work.

A tenant's admissions are serialized by a lock on its tenant row, so two
requests racing for the last unit of quota see each other's usage. The
allocation and its slices are committed as ``claiming`` before any agent is
called, and no lock is held across that call: a crash at any point leaves a
record the reconciler can finish or undo.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils.translation import gettext_noop as N_

from ocenter import reasons
from ocenter.admission import REALTIME, SliceAsk, UsageRow
from ocenter.audit import audit_entry
from ocenter.errors import DomainError, Refused, Unprocessable
from ocenter.lib.rows import insert_all, saved
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from ocenter.metrics import ADMISSION_SECONDS
from pools.models import LIVE_POOL_STATUSES, MAX_ARRAY_MEMBERS, Accelerator, Allocation, Pool, Slice
from pools.selectors import templates_asked, tenant_usage
from pools.services.allocations.claim import allocation_claim, allocations_claim
from pools.services.allocations.history import announce, moved, note_reason
from pools.services.allocations.queue import queue_drain
from pools.services.allocations.reclaim import reclaim, victims_for
from pools.services.allocations.release import release_finish
from pools.services.allocations.room import admit, plan, try_place
from tenants.models import Tenant
from tenants.quotas import OverLimit
from tenants.selectors import tenant_locked, tenant_quotas

State = Allocation.State
NO_ROOM = N_("waiting for room: no GPU that matches has the compute and memory free")


def _new_allocation(
    *,
    actor,
    tenant: Tenant,
    project,
    count: int,
    compute_units: int,
    memory_mib: int,
    priority: str = Allocation.Priority.OFFLINE,
    policy: str = Allocation.Policy.BINPACK,
    vendor: str = "",
    accelerator_model: str = "",
    pool_name: str = "",
    region: str = "",
    lease_seconds: int | None = None,
    labels: dict | None = None,
    requeue_on_preempt: bool = False,
    idempotency_key: str | None = None,
) -> Allocation:
    """The (unsaved) allocation a request asks for: the real request and its preview build it alike.

    Asked of hardware cut to templates, its shape is rounded up to the smallest template that holds it (the whole
    device when none does), and the template is named.
    """
    template = ""
    if compute_units < COMPUTE_UNITS_PER_GPU:
        templates = templates_asked(vendor=vendor, model=accelerator_model, pool_name=pool_name, region=region) or []
        fitting = [t for t in templates if t["compute_units"] >= compute_units and t["memory_mib"] >= memory_mib]
        if fitting:
            chosen = min(fitting, key=lambda t: (t["compute_units"], t["memory_mib"]))
            compute_units, memory_mib, template = chosen["compute_units"], chosen["memory_mib"], chosen["name"]
        elif templates:
            compute_units = COMPUTE_UNITS_PER_GPU
    return Allocation(
        template=template,
        tenant=tenant,
        project=project,
        created_by=actor if getattr(actor, "pk", None) else None,
        count=count,
        compute_units=compute_units,
        memory_mib=memory_mib,
        priority=priority,
        policy=policy,
        vendor=vendor,
        accelerator_model=accelerator_model,
        pool_name=pool_name,
        region=region,
        lease_seconds=lease_seconds,
        labels=labels or {},
        requeue_on_preempt=requeue_on_preempt,
        idempotency_key=idempotency_key or None,
    )


def _digest(allocation: Allocation) -> str:
    """What was asked, as one value: two requests under one idempotency key are the same request when these match."""
    asked = {name: getattr(allocation, name) for name in Allocation.ASKED}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()


def allocation_request(*, actor, tenant: Tenant, project, idempotency_key: str | None = None, **spec) -> tuple[Allocation, bool]:
    """Admit, place and claim a request; return (allocation, created).

    ``spec``: count, compute_units, memory_mib, and optionally priority,
    policy, vendor, accelerator_model, pool_name, region, lease_seconds,
    labels, requeue_on_preempt. With no room it waits, queued; a realtime
    request within its guarantee reclaims offline and borrowed work instead.
    A retried request with the same idempotency key returns the first allocation.
    """
    victims, held = [], None
    started = time.perf_counter()
    with transaction.atomic():
        # One tenant's admissions at a time: the quota's last unit goes to one request only.
        tenant = tenant_locked(tenant.id)
        allocation = _new_allocation(actor=actor, tenant=tenant, project=project, idempotency_key=idempotency_key, **spec)
        if idempotency_key:
            allocation.request_digest = _digest(allocation)
            existing = Allocation.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
            if existing is not None:
                if existing.request_digest not in ("", allocation.request_digest):
                    raise Unprocessable(
                        f"Idempotency-Key '{idempotency_key}' was used for a different request (allocation {existing.id}); "
                        "send that request again to see its answer, or use a new key for this one",
                        field="Idempotency-Key",
                        code="idempotency_key_reused",
                        allocation=str(existing.id),
                    )
                return existing, False
        if not tenant.is_active:
            raise Refused(f"{tenant.slug} is suspended: it cannot start new work")
        usage = tenant_usage([tenant.id]).get(tenant.id, [])
        quotas = tenant_quotas(tenant.id)
        # Placed at once, it is stored with its slices in the statement that takes their room.
        placed = moved(allocation, State.CLAIMING, actor=actor, via=State.QUEUED, reason=N_("placed"))
        try:
            stored = [allocation, *placed, _audit_entry(allocation, actor)]
            held, over = try_place(allocation, usage=usage, quotas=quotas, rows=stored), None
        except OverLimit as exc:  # realtime within its guarantee, over its limit: its own work makes way
            held, over = None, exc
        if held:
            announce(placed)
        else:
            room_found = over is not None
            if over is None:
                try:
                    _check_possible(allocation, usage, quotas)
                except OverLimit as exc:
                    over = exc
            realtime = allocation.priority == REALTIME
            reclaiming = victims_for(allocation, quotas=quotas, over=over, room_found=room_found) if realtime else []
            queued = moved(allocation, State.QUEUED, actor=actor, reason=N_("requested"))
            # Why it waits is read when the event is shown; reclaiming says so once its victims are known.
            allocation.reason = NO_ROOM
            stored = [allocation, *queued, _audit_entry(allocation, actor)]
            insert_all(stored)
            saved(stored)
            announce(queued)
            allocation.keep_slices([])
            victims = reclaim(allocation, reclaiming, actor=actor)
            if victims:
                note_reason(allocation, reasons.MAKING_ROOM % {"count": len(victims)})
    ADMISSION_SECONDS.labels("placed" if held else "queued").observe(time.perf_counter() - started)
    for victim in victims:
        release_finish(allocation=victim, final_state=State.PREEMPTED, actor=actor)
    if victims:
        queue_drain()
        allocation.refresh_from_db()
    elif held:
        allocation = allocation_claim(allocation_id=allocation.id, actor=actor, placed=(allocation, held))
    return allocation, True


# --- job arrays ----------------------------------------------------------------
#
# One request for many independent allocations (not a gang: ``count`` is that), each placed on its own, with its
# own id, state and idempotency key (``key/index``). They are admitted together, under one hold of the tenant's
# lock, against usage and quotas read once: each member placed adds its slices to the usage the next is admitted
# against. Once one finds no room, or its quota is full, it and every member after it wait, saying why, written in
# one statement. After the commit, each pool's agent gets its members' claims in one call.


def allocation_request_array(
    *, actor, tenant: Tenant, project, members: int, idempotency_key: str | None = None, **spec
) -> tuple[list[Allocation], bool]:
    """Ask for ``members`` allocations of ``spec`` (as ``allocation_request`` takes it) at once; return (members, created).

    Raises (and stores nothing) when the first member is refused or could
    never be placed; a later member refused by its quota waits instead
    ("waiting for quota: …"), for the quota its own array frees. A retried
    array with the same key returns the members it made the first time.
    """
    if not 1 <= members <= MAX_ARRAY_MEMBERS:
        raise Unprocessable(f"members must be 1 to {MAX_ARRAY_MEMBERS}", field="members")
    array_id, placed = uuid.uuid4(), []
    with transaction.atomic():
        tenant = tenant_locked(tenant.id)
        if idempotency_key:
            existing = _made_before(tenant, idempotency_key, members, project=project, spec=spec, actor=actor)
            if existing is not None:
                return existing, False
        if not tenant.is_active:
            raise Refused(f"{tenant.slug} is suspended: it cannot start new work")
        usage = tenant_usage([tenant.id]).get(tenant.id, [])
        quotas = tenant_quotas(tenant.id)
        made, waiting, why = [], [], ""
        for index in range(members):
            key = f"{idempotency_key}/{index}" if idempotency_key else None
            allocation = _new_allocation(actor=actor, tenant=tenant, project=project, idempotency_key=key, **spec)
            allocation.array_id, allocation.array_index = array_id, index
            if key:
                allocation.request_digest = _digest(allocation)
            made.append(allocation)
            if not why:
                rows = moved(allocation, State.CLAIMING, actor=actor, via=State.QUEUED, reason=N_("placed"))
                try:
                    held = try_place(allocation, usage=usage, quotas=quotas, rows=[allocation, *rows, _audit_entry(allocation, actor)])
                except Refused as exc:
                    if index == 0 and not isinstance(exc, OverLimit):
                        raise
                    held, why = None, reasons.WAITING_FOR_QUOTA % {"detail": exc.detail}
                if held:
                    announce(rows)
                    usage += _held(allocation, held)
                    placed.append((allocation, held))
                    continue
                if not why:
                    if index == 0:
                        with contextlib.suppress(OverLimit):  # realtime over its limit waits for room made
                            _check_possible(allocation, usage, quotas)
                    why = NO_ROOM  # room only shrinks while the array is placed: the rest wait without trying
                allocation.state = State.QUEUED
            queued = moved(allocation, State.QUEUED, actor=actor, reason=N_("requested"))
            allocation.reason = why
            allocation.keep_slices([])
            waiting += [allocation, *queued, _audit_entry(allocation, actor)]
        insert_all(waiting)
        saved(waiting)
        announce(waiting)
    ran = {a.id: a for a in allocations_claim(placed=placed, actor=actor)}
    return [ran.get(a.id, a) for a in made], True


def _held(allocation: Allocation, held: list[Slice]) -> list[UsageRow]:
    """What a member just placed adds to its tenant's usage, for the members after it."""
    return [UsageRow(allocation.project_id, s.pool.name, s.accelerator.model, allocation.priority, s.compute_units, s.memory_mib, 1)
            for s in held]  # fmt: skip


def _made_before(tenant: Tenant, key: str, members: int, *, project, spec: dict, actor) -> list[Allocation] | None:
    """The members an array under ``key`` made, or None when there was none; the same key for another array is refused."""
    first = Allocation.objects.filter(tenant=tenant, idempotency_key=f"{key}/0").first()
    if first is None:
        return None
    asked = _new_allocation(actor=actor, tenant=tenant, project=project, **spec)
    same = first.array_id is not None and first.request_digest in ("", _digest(asked))
    made = list(Allocation.objects.filter(array_id=first.array_id).order_by("array_index")) if same else []
    if not same or len(made) != members:
        raise Unprocessable(
            f"Idempotency-Key '{key}' was used for a different request (array {first.array_id}); "
            "send that request again to see its answer, or use a new key for this one",
            field="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return made


def _asked(allocation: Allocation) -> dict:
    """What the audit log keeps of a request."""
    return {"count": allocation.count, "compute_units": allocation.compute_units, "memory_mib": allocation.memory_mib,
            "priority": allocation.priority}  # fmt: skip


def _audit_entry(allocation: Allocation, actor):
    return audit_entry(actor=actor, action="allocation.request", obj=allocation, tenant_id=allocation.tenant_id, changes=_asked(allocation))


def allocation_preview(*, actor, tenant: Tenant, project, **spec) -> dict:
    """Where a request would land now and whether admission would let it in, built as the real request is. Writes nothing.

    ``{"allocation": the unsaved Allocation (its shape rounded up to a template where asked of hardware cut to them),
    "placed": [GpuState] or None (it would wait), "refusal": str or None}``.
    """
    allocation = _new_allocation(actor=actor, tenant=tenant, project=project, **spec)
    try:
        found = plan(allocation, usage=tenant_usage([tenant.id]).get(tenant.id, []), quotas=tenant_quotas(tenant.id))
    except Refused as exc:
        return {"allocation": allocation, "placed": None, "refusal": exc.detail}
    return {"allocation": allocation, "placed": found.chosen if found else None, "refusal": None}


# --- a request with no room ------------------------------------------------------


def _check_possible(allocation: Allocation, usage: list, quotas):
    """Refuse now, before anything is stored, a request no GPU could ever take.

    Asked only of a request that fits nowhere now (one that was placed was
    possible). Input errors name the field and what would be valid; a
    request no placement could admit (over its quota anywhere, no healthy
    GPU of its kind) is refused. One query, the GPUs there are summed by
    kind (and the pools, to name them, when a pool or region asked for has none).
    """
    kinds = list(
        Accelerator.objects.filter(gone_at=None)
        .values("pool__name", "pool__region", "pool__status", "vendor", "model", "health")
        .annotate(gpus=Count("id"), largest=Max("memory_mib"), holding=Count("id", filter=Q(memory_mib__gte=allocation.memory_mib)))
        .order_by()
    )
    named = {k["pool__name"] for k in kinds}
    if allocation.pool_name and allocation.pool_name not in named and not Pool.objects.filter(name=allocation.pool_name).exists():
        known = ", ".join(Pool.objects.values_list("name", flat=True))
        raise DomainError(f"no pool named '{allocation.pool_name}'; known: {known}", field="pool")
    regions = {k["pool__region"] for k in kinds}
    if allocation.region and allocation.region not in regions and not Pool.objects.filter(region=allocation.region).exists():
        raise DomainError(f"no pool in region '{allocation.region}'", field="region")
    vendor = allocation.vendor.lower()
    if vendor and not any(k["vendor"].lower() == vendor for k in kinds):
        known = ", ".join(sorted({k["vendor"] for k in kinds}))
        raise DomainError(f"no GPU from vendor '{allocation.vendor}'; known: {known}", field="vendor")
    if allocation.accelerator_model and not any(k["model"] == allocation.accelerator_model for k in kinds):
        known = ", ".join(sorted({k["model"] for k in kinds}))
        raise DomainError(f"no GPU of model '{allocation.accelerator_model}'; known: {known}", field="accelerator_model")
    matching = [
        k
        for k in kinds
        if (not vendor or k["vendor"].lower() == vendor)
        and (not allocation.accelerator_model or k["model"] == allocation.accelerator_model)
        and (not allocation.pool_name or k["pool__name"] == allocation.pool_name)
    ]
    largest, gpus = max((k["largest"] for k in matching), default=0), sum(k["gpus"] for k in matching)
    if allocation.memory_mib > largest:
        raise DomainError(
            f"memory_mib {allocation.memory_mib} is more than any matching GPU has (largest: {largest} MiB)", field="memory_mib"
        )
    if allocation.count > gpus:
        raise DomainError(f"count {allocation.count} is more than the {gpus} matching GPUs", field="count")
    # A drained pool will take work again: requests for it wait rather than being refused.
    scopes = sorted(
        {
            (k["pool__name"], k["model"])
            for k in matching
            if k["holding"] and k["health"] == Accelerator.Health.HEALTHY and k["pool__status"] in LIVE_POOL_STATUSES
            and (not allocation.region or k["pool__region"] == allocation.region)
        }
    )  # fmt: skip
    if not scopes:
        raise Refused(
            "no healthy GPU in a live pool matches this request (model, vendor, pool, region and memory per slice); change the constraints",
            code="no_matching_gpu",
        )
    refusals = []
    for pool, model in scopes:
        ask = SliceAsk(pool, model, allocation.compute_units, allocation.memory_mib, allocation.template)
        try:
            admit(
                allocation,
                [ask] * allocation.count,
                usage,
                quotas,
            )
            return
        except Refused as exc:
            refusals.append(exc)
    # Over the limit somewhere is the answer to act on: the tenant's own work can make way there.
    raise next((r for r in refusals if isinstance(r, OverLimit)), refusals[0])
