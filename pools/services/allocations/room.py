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
  On PostgreSQL that statement also writes the slices (and a new request's
  own rows): one round trip places, reserves and stores it.
- The caller holds its tenant's row lock, so the usage admission reads
  cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import connection, transaction
from django.db.models import F

from ocenter.admission import REALTIME, AdmissionRequest, SliceAsk, run_admission_checks
from ocenter.lib.rows import by_model, insert_all, insert_sql, saved, together
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU as UNITS
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
    return [SliceAsk(g.pool, g.model, allocation.compute_units, allocation.memory_mib, allocation.template) for g in gpus]


def admit(allocation: Allocation, asks: list[SliceAsk], usage: list, quotas=None):
    """Run every admission check in settings on these slices (``quotas``: the tenant's, if read already); raises Refused."""
    run_admission_checks(
        AdmissionRequest(
            tenant_id=allocation.tenant_id,
            project_id=allocation.project_id,
            priority=allocation.priority,
            slices=asks,
            usage=usage,
            lease_seconds=allocation.lease_seconds,
            quotas=quotas,
        )
    )


@dataclass
class Plan:
    """Where a request would go now, admitted: the GPUs chosen and the candidates they were chosen from."""

    chosen: list[GpuState]
    candidates: list[GpuState]
    ask: Ask


def fits(ask: Ask, *, exclude=(), fresh: bool = False) -> tuple[list[GpuState], list[GpuState]] | None:
    """(the GPUs ``ask`` would go to, the candidates they were chosen from) on this process's view of the fleet, or None.

    ``fresh``: the view has shown no room for it; read the GPUs the database says have room first.
    """
    if fresh:
        fleet.refresh(ask)
    candidates = fleet.best(ask, exclude=exclude, limit=candidate_limit(ask))
    chosen = place(ask, candidates)
    if chosen is None:
        # The best few could not hold it (a gang across pools, say): look at every GPU with room (in the view just read).
        candidates = fleet.best(ask, exclude=exclude)
        chosen = place(ask, candidates)
    return None if chosen is None else (chosen, candidates)


def plan(allocation: Allocation, *, usage: list, quotas, exclude=(), fresh: bool = False) -> Plan | None:
    """Place ``allocation`` on this process's view of the fleet and run admission; None when nothing has room.

    Reads only (the preview shows exactly this). Raises Refused when the
    quota or another admission check says no.
    """
    ask = ask_of(allocation, quotas)
    found = fits(ask, exclude=exclude, fresh=fresh)
    if found is None:
        return None
    chosen, candidates = found
    admit(allocation, slice_asks(allocation, chosen), usage, quotas)
    return Plan(chosen, candidates, ask)


def try_place(allocation: Allocation, *, usage: list, quotas, exclude=(), rows=(), reread: bool = True) -> list[Slice] | None:
    """Place ``allocation``, take the room and hold its slices (under its tenant's lock): the slices held, or None.

    A view that finds no room is read again before the answer is "none"
    (unless not ``reread``: the caller has just read it).
    ``rows``: for a request not stored yet, the rows that store it (itself,
    its history, its audit entry), written with its slices in the statement
    that takes the room (on PostgreSQL; right after it elsewhere).
    Raises Refused when the quota or another admission check says no.
    """
    exclude, fresh = set(exclude), False
    for _ in range(MAX_RESERVATIONS):
        found = plan(allocation, usage=usage, quotas=quotas, exclude=exclude, fresh=fresh)
        if found is None:
            if fresh or not reread:
                return None
            fresh = True  # perhaps only this process's view is out of date
            continue
        allocation.borrowed = _is_borrowed(allocation, slice_asks(allocation, found.chosen), usage, quotas)
        if len(found.chosen) == 1:
            # Any GPU of the pool and model just admitted will do, best first.
            best = found.chosen[0]
            alike = [g for g in ranked(found.ask, found.candidates) if (g.pool, g.model) == (best.pool, best.model)]
            held = _take_first(allocation, alike, rows)
            if held is None:
                lost = {g.id for g in alike}  # taken by racing requests (or gone since the view was read)
                exclude |= lost
                fleet.correct(lost)
                continue
        else:
            with transaction.atomic():  # a gang: all its GPUs or none
                held = _take_all(allocation, found.chosen, rows)
                if held is None:
                    transaction.set_rollback(True)
            if held is None:
                lost = {g.id for g in found.chosen}  # some are someone else's now: look past them
                exclude |= lost
                fleet.correct(lost)
                continue
        for s in held:
            _on_commit_add(s.accelerator_id, s.compute_units, s.memory_mib)
        return held
    return None


def _is_borrowed(allocation: Allocation, asks: list[SliceAsk], usage: list, quotas) -> bool:
    """Whether this work goes beyond the tenant's guarantee (and so can be reclaimed)."""
    if allocation.priority == REALTIME:
        return False
    asked = sum(a.compute_units for a in asks)
    for quota in (q for q in quotas if q.project_id is None):
        if any(quota.pool_name in ("", a.pool_name) and quota.accelerator_model in ("", a.accelerator_model) for a in asks):
            used = quota_usage(quota, usage).used["compute_units"]
            if used + asked > quota.guarantee_compute_units:
                return True
    return False


# --- taking and giving back room --------------------------------------------------


@cache
def _placeable_sql() -> tuple[str, tuple]:
    # Compiled once: compiling the queryset cost more than the statement it leads.
    return Accelerator.objects.placeable().values("id").order_by().query.sql_with_params()


def _room_sql(allocation: Allocation, ids: list) -> tuple[str, list]:
    """The GPUs of ``ids`` that are placeable and have room for one slice of ``allocation``, as SQL (PostgreSQL).

    The test of ``AcceleratorQuerySet.with_room``, written out (``tests/pools/test_fleet.py`` holds them equal).
    """
    sql, params = _placeable_sql()
    g = "pools_accelerator"
    fractional = "" if allocation.compute_units >= UNITS else f" AND {g}.fractional"
    return (
        f"{sql} AND {g}.allocated_compute_units <= %s AND {g}.memory_mib >= {g}.allocated_memory_mib + {g}.outside_memory_mib + %s"
        f"{fractional} AND {g}.id = ANY(%s)",
        [*params, UNITS - allocation.compute_units, allocation.memory_mib, ids],
    )


_ADD_ROOM = """UPDATE pools_accelerator SET allocated_compute_units = allocated_compute_units + %s,
                                              allocated_memory_mib = allocated_memory_mib + %s"""


def _take_first(allocation: Allocation, ranked_gpus: list[GpuState], rows) -> list[Slice] | None:
    """Take one slice's room on the best of ``ranked_gpus`` that has it and that no other request is taking now; hold it there.

    Racing requests rank the same GPU first (binpack sends them all to the
    fullest): each gets the next one in one statement, instead of queueing
    behind the first's row lock or trying again and again.
    """
    if not ranked_gpus:
        return None
    ids = [g.id for g in ranked_gpus]
    held = Slice(allocation=allocation, index=0, compute_units=allocation.compute_units, memory_mib=allocation.memory_mib)
    if connection.vendor == "postgresql":
        room, params = _room_sql(allocation, ids)
        first = f"({room} ORDER BY array_position(%s::bigint[], id) LIMIT 1 FOR UPDATE SKIP LOCKED)"
        take = (f"{_ADD_ROOM} WHERE id = {first} RETURNING id, pool_id", [allocation.compute_units, allocation.memory_mib, *params, ids])
        # Its GPU is the one the statement takes: the slice's row names it from there.
        on_taken = {"accelerator_id": "(SELECT id FROM taken)", "pool_id": "(SELECT pool_id FROM taken)"}
        slice_row = insert_sql([held], when=TAKEN, take=on_taken)
        taken = {row[0] for row in together("taken", take, *_inserts(rows), slice_row)}
        gpu = next((g for g in ranked_gpus if g.id in taken), None)
    else:
        gpu = next((g for g in ranked_gpus if _add_room_one(allocation, g.id)), None)
        if gpu is not None:
            _on(held, gpu)
            insert_all([*rows, held])
    if gpu is None:
        return None
    saved([*rows, held])
    return [_on(held, gpu)]


def _take_all(allocation: Allocation, chosen: list[GpuState], rows) -> list[Slice] | None:
    """Take the room on every GPU of a gang and hold its slices there; None when one is taken already (the caller rolls back)."""
    held = [
        _on(Slice(allocation=allocation, index=i, compute_units=allocation.compute_units, memory_mib=allocation.memory_mib), gpu)
        for i, gpu in enumerate(chosen)
    ]
    ids = [gpu.id for gpu in chosen]
    if connection.vendor == "postgresql":
        room, params = _room_sql(allocation, ids)
        take = (f"{_ADD_ROOM} WHERE id IN ({room} FOR UPDATE SKIP LOCKED) RETURNING id",
                [allocation.compute_units, allocation.memory_mib, *params])  # fmt: skip
        every = f"(SELECT count(*) FROM taken) = {len(ids)}"
        taken = {row[0] for row in together("taken", take, *_inserts(rows, when=every), insert_sql(held, when=every))}
    else:
        taken = {gpu_id for gpu_id in ids if _add_room_one(allocation, gpu_id)}
        if taken == set(ids):
            insert_all([*rows, *held])
    if taken != set(ids):
        return None
    saved([*rows, *held])
    return held


TAKEN = "EXISTS (SELECT 1 FROM taken)"


def _inserts(rows, *, when: str = TAKEN) -> list[tuple[str, list]]:
    return [insert_sql(group, when=when) for group in by_model(rows)]


def _on(held: Slice, gpu: GpuState) -> Slice:
    """``held`` placed on ``gpu``, with its GPU (what a response shows of it) and pool (to claim it) from the fleet view: no query."""
    held.accelerator = Accelerator(
        id=gpu.id, pool_id=gpu.pool_id, uuid=gpu.uuid, model=gpu.model, vendor=gpu.vendor, memory_mib=gpu.memory_mib
    )
    held.pool = fleet.pool(gpu.pool_id)
    return held


def _add_room_one(allocation: Allocation, gpu_id) -> bool:
    """SQLite (one writer at a time, nothing locked to skip): add to one GPU's counters if it has the room."""
    room = Accelerator.objects.placeable().with_room(compute_units=allocation.compute_units, memory_mib=allocation.memory_mib)
    return bool(
        room.filter(id=gpu_id).update(
            allocated_compute_units=F("allocated_compute_units") + allocation.compute_units,
            allocated_memory_mib=F("allocated_memory_mib") + allocation.memory_mib,
        )
    )


def freed(slices) -> tuple:
    """``(Accelerator, {gpu_id: {counter: -amount}})``: the room these active slices give back, as ``guarded(adds=…)`` takes it."""
    deltas = {}
    for s in slices:
        gpu = deltas.setdefault(s.accelerator_id, {"allocated_compute_units": 0, "allocated_memory_mib": 0})
        gpu["allocated_compute_units"] -= s.compute_units
        gpu["allocated_memory_mib"] -= s.memory_mib
    return Accelerator, deltas


def freed_in_view(slices):
    """Once committed, this process's fleet view gives back the room of these slices too."""
    for s in slices:
        _on_commit_add(s.accelerator_id, -s.compute_units, -s.memory_mib)


def free(slices):
    """Give back the room of these slices (they no longer hold anything on their GPUs)."""
    active = [s for s in slices if s.active]
    for gpu_id, amounts in freed(active)[1].items():
        Accelerator.objects.filter(id=gpu_id).update(**{name: F(name) + amount for name, amount in amounts.items()})
    freed_in_view(active)
    for s in slices:
        s.active = False
    Slice.objects.filter(id__in=[s.id for s in slices]).update(active=False)


def _on_commit_add(gpu_id, units: int, mib: int):
    transaction.on_commit(lambda: fleet.add(gpu_id, units, mib))
