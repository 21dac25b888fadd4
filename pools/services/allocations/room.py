"""
Room on GPUs: where a request would go, whether admission lets it, and the
statements that take and give back the room.

Concurrency, said out loud:

- Candidates come from this process's view of the fleet (``pools.fleet``),
  which may be seconds old; the database is the authority. A GPU's room is
  taken by a conditional UPDATE built from ``Accelerator.objects.placeable()
  .with_room(…)``: it adds to the GPU's counters only while they stay within
  the GPU and the GPU is still placeable, and skips GPUs a racing request is
  taking (``FOR UPDATE SKIP LOCKED``); the loser places again past them.
- The caller holds its tenant's row lock, so the usage admission reads
  cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F

from ocenter.admission import REALTIME, AdmissionRequest, SliceAsk, run_admission_checks
from pools.fleet import candidate_limit, fleet
from pools.models import Accelerator, Allocation, Slice
from pools.placement import Ask, GpuState, place, ranked
from pools.selectors import allowed_scopes
from tenants.quotas import quota_usage

# Tries at taking room when racing requests keep taking the chosen GPUs first.
MAX_RESERVATIONS = 8


def ask_of(allocation: Allocation, quotas) -> Ask:
    """What placement needs to know of ``allocation``; ``quotas`` (None: anywhere) say where the tenant may place."""
    return Ask(
        count=allocation.count,
        compute_units=allocation.compute_units,
        memory_mib=allocation.memory_mib,
        policy=allocation.policy,
        vendor=allocation.vendor,
        model=allocation.accelerator_model,
        pool=allocation.pool_name,
        region=allocation.region,
        allowed=None if quotas is None else allowed_scopes(quotas),
    )


def slice_asks(allocation: Allocation, gpus) -> list[SliceAsk]:
    """One admission ask per slice, where it would land."""
    return [SliceAsk(g.pool, g.model, allocation.compute_units, allocation.memory_mib) for g in gpus]


def admit(allocation: Allocation, asks: list[SliceAsk], usage: list):
    """Run every admission check in settings on these slices; raises Refused."""
    run_admission_checks(
        AdmissionRequest(
            tenant_id=allocation.tenant_id,
            project_id=allocation.project_id,
            priority=allocation.priority,
            slices=asks,
            usage=usage,
            lease_seconds=allocation.lease_seconds,
        )
    )


@dataclass
class Plan:
    """Where a request would go now, admitted: the GPUs chosen and the candidates they were chosen from."""

    chosen: list[GpuState]
    candidates: list[GpuState]
    ask: Ask


def plan(allocation: Allocation, *, usage: list, quotas, exclude=(), fresh: bool = False) -> Plan | None:
    """Place ``allocation`` on this process's view of the fleet and run admission; None when nothing has room.

    Reads only (the preview shows exactly this). Raises Refused when the
    quota or another admission check says no.
    """
    ask = ask_of(allocation, quotas)
    candidates = fleet.best(ask, exclude=exclude, limit=candidate_limit(ask), fresh=fresh)
    chosen = place(ask, candidates)
    if chosen is None:
        # The best few could not hold it (a gang across pools, say): look at every GPU with room (in the view just read).
        candidates = fleet.best(ask, exclude=exclude)
        chosen = place(ask, candidates)
    if chosen is None:
        return None
    admit(allocation, slice_asks(allocation, chosen), usage)
    return Plan(chosen, candidates, ask)


def try_place(allocation: Allocation, *, usage: list, quotas, exclude=()) -> list[GpuState] | None:
    """Place ``allocation`` and take the room (under its tenant's lock): the GPUs chosen, or None.

    A view that finds no room is read again before the answer is "none".
    The caller saves the allocation and then holds the slices (``hold``).
    Raises Refused when the quota or another admission check says no.
    """
    exclude, fresh = set(exclude), False
    for _ in range(MAX_RESERVATIONS):
        found = plan(allocation, usage=usage, quotas=quotas, exclude=exclude, fresh=fresh)
        if found is None:
            if fresh:
                return None
            fresh = True  # perhaps only this process's view is out of date
            continue
        chosen = found.chosen
        if len(chosen) == 1:
            # Any GPU of the pool and model just admitted will do, best first.
            best = chosen[0]
            alike = [g for g in ranked(found.ask, found.candidates) if (g.pool, g.model) == (best.pool, best.model)]
            gpu = _take_first(allocation, alike)
            if gpu is None:
                exclude |= {g.id for g in alike}  # taken by racing requests (or gone since the view was read)
                continue
            chosen = [gpu]
        else:
            with transaction.atomic():  # a gang: all its GPUs or none
                missed = _take_all(allocation, chosen)
                if missed:
                    transaction.set_rollback(True)
            if missed:
                exclude |= missed  # someone else's now: look past them
                continue
        allocation.borrowed = _is_borrowed(allocation, slice_asks(allocation, chosen), usage, quotas)
        return chosen
    return None


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


# --- taking and giving back room --------------------------------------------------


def _room_sql(allocation: Allocation, ids: list) -> tuple[str, list]:
    """The GPUs of ``ids`` that are placeable and have room for one slice of ``allocation``, as SQL."""
    room = Accelerator.objects.placeable().with_room(compute_units=allocation.compute_units, memory_mib=allocation.memory_mib)
    return room.filter(id__in=ids).values("id").order_by().query.sql_with_params()


_ADD_ROOM = """UPDATE pools_accelerator SET allocated_compute_units = allocated_compute_units + %s,
                                              allocated_memory_mib = allocated_memory_mib + %s"""


def _take_first(allocation: Allocation, ranked_gpus: list[GpuState]) -> GpuState | None:
    """Take one slice's room on the best of ``ranked_gpus`` that has it and that no other request is taking now.

    Racing requests rank the same GPU first (binpack sends them all to the
    fullest): each gets the next one in one statement, instead of queueing
    behind the first's row lock or trying again and again.
    """
    ids = [g.id for g in ranked_gpus]
    if not ids:
        return None
    if connection.vendor == "postgresql":
        room, params = _room_sql(allocation, ids)
        taken = _execute(
            f"{_ADD_ROOM} WHERE id = ({room} ORDER BY array_position(%s::bigint[], id) LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
            [allocation.compute_units, allocation.memory_mib, *params, ids],
        )
        return next((g for g in ranked_gpus if g.id in taken), None)
    return next((g for g in ranked_gpus if _add_room_one(allocation, g.id)), None)


def _take_all(allocation: Allocation, chosen: list[GpuState]) -> set:
    """Take the room on every GPU of a gang; returns the ids it could not take (the caller rolls back if any)."""
    ids = [gpu.id for gpu in chosen]
    if connection.vendor == "postgresql":
        room, params = _room_sql(allocation, ids)
        taken = _execute(
            f"{_ADD_ROOM} WHERE id IN ({room} FOR UPDATE SKIP LOCKED) RETURNING id",
            [allocation.compute_units, allocation.memory_mib, *params],
        )
    else:
        taken = {gpu_id for gpu_id in ids if _add_room_one(allocation, gpu_id)}
    return set(ids) - taken


def _execute(sql: str, params: list) -> set:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _add_room_one(allocation: Allocation, gpu_id) -> bool:
    """SQLite (one writer at a time, nothing locked to skip): add to one GPU's counters if it has the room."""
    room = Accelerator.objects.placeable().with_room(compute_units=allocation.compute_units, memory_mib=allocation.memory_mib)
    return bool(
        room.filter(id=gpu_id).update(
            allocated_compute_units=F("allocated_compute_units") + allocation.compute_units,
            allocated_memory_mib=F("allocated_memory_mib") + allocation.memory_mib,
        )
    )


def hold(allocation: Allocation, chosen: list[GpuState]):
    """Record the slices of a saved allocation on the GPUs whose room it took (and, once committed, in this process's view)."""
    for gpu in chosen:
        _on_commit_add(gpu.id, allocation.compute_units, allocation.memory_mib)
    Slice.objects.bulk_create(
        [
            Slice(
                allocation=allocation,
                accelerator_id=gpu.id,
                pool_id=gpu.pool_id,
                index=i,
                compute_units=allocation.compute_units,
                memory_mib=allocation.memory_mib,
            )
            for i, gpu in enumerate(chosen)
        ]
    )


def free(slices):
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


def _on_commit_add(gpu_id, units: int, mib: int):
    transaction.on_commit(lambda: fleet.add(gpu_id, units, mib))
