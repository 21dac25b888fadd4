"""
Placement, pure: given the GPUs that could take work and what they hold,
choose a GPU for every slice of a request, or none at all (a gang is all or
nothing). No database here: the caller reads candidates in one query, and
the agent stays the final authority (409 → place again).

Rules: constraints first (vendor, model, pool, region, allowed pools; the
caller passes only healthy GPUs of live pools), then the policy:

- ``binpack``: fill the fullest GPUs that still fit, leaving whole GPUs free;
- ``spread``: the emptiest GPUs first, balancing load;
- ``cheapest``: the lowest cost weight first, then binpack.

A gang (count > 1) lands in one pool, on distinct GPUs, on one node when a
node can hold it all.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from ocenter.lib.units import COMPUTE_UNITS_PER_GPU


@dataclass(frozen=True, slots=True)
class GpuState:
    """A GPU as placement sees it: where it is, what it is, what is free."""

    id: int
    pool: str
    region: str
    node: int
    vendor: str
    model: str
    memory_mib: int
    allocated_units: int
    allocated_mib: int
    cost: Decimal = Decimal(1)
    pool_id: object = None  # the database's key of its pool, where the caller has it
    fractional: bool = True  # it can hold a slice smaller than the whole GPU
    uuid: str = ""  # as its agent names it
    shapes: tuple = ()  # (compute units, MiB) of each template it is cut to; empty: any shape

    @property
    def free_units(self) -> int:
        return COMPUTE_UNITS_PER_GPU - self.allocated_units

    @property
    def free_mib(self) -> int:
        return self.memory_mib - self.allocated_mib


@dataclass(frozen=True)
class Ask:
    """What one request needs: ``count`` slices of the same size, and where they may go."""

    count: int
    compute_units: int
    memory_mib: int
    policy: str = "binpack"
    vendor: str = ""
    model: str = ""
    pool: str = ""
    region: str = ""
    # (pool, model) pairs the tenant may use; "" matches any. None: no restriction.
    allowed: frozenset | None = None


def allows(ask: Ask, gpu: GpuState) -> bool:
    """The constraints of ``ask`` (not capacity) admit ``gpu``."""
    if ask.vendor and gpu.vendor.lower() != ask.vendor.lower():
        return False
    if ask.model and gpu.model != ask.model:
        return False
    if ask.pool and gpu.pool != ask.pool:
        return False
    if ask.region and gpu.region != ask.region:
        return False
    return ask.allowed is None or any((p in ("", gpu.pool)) and (m in ("", gpu.model)) for p, m in ask.allowed)


def can_hold(ask: Ask, gpu: GpuState) -> bool:
    """``gpu`` can hold a slice of this size at all: a fraction of a GPU needs a GPU that enforces fractions, and one
    cut to templates takes one of them exactly."""
    if ask.compute_units >= COMPUTE_UNITS_PER_GPU:
        return True
    return gpu.fractional and (not gpu.shapes or (ask.compute_units, ask.memory_mib) in gpu.shapes)


def fits(ask: Ask, gpu: GpuState) -> bool:
    """``gpu`` has room for one slice of ``ask`` (in this snapshot; ``Accelerator.objects.with_room`` is the same rule in SQL)."""
    return gpu.free_units >= ask.compute_units and gpu.free_mib >= ask.memory_mib and can_hold(ask, gpu)


def _key(policy: str):
    if policy == "spread":
        return lambda g: (-g.free_units, -g.free_mib, g.id)
    if policy == "cheapest":
        return lambda g: (g.cost, g.free_units, g.free_mib, g.id)
    return lambda g: (g.free_units, g.free_mib, g.id)  # binpack


def ranked(ask: Ask, gpus) -> list[GpuState]:
    """Every GPU that could take one slice of ``ask``, best first by its policy."""
    return sorted((g for g in gpus if fits(ask, g) and allows(ask, g)), key=_key(ask.policy))


def place(ask: Ask, gpus) -> list[GpuState] | None:
    """GPUs for every slice of ``ask``, best first by its policy; None when it cannot all fit."""
    key = _key(ask.policy)
    candidates = [g for g in gpus if fits(ask, g) and allows(ask, g)]
    if len(candidates) < ask.count:
        return None
    if ask.count == 1:
        return [min(candidates, key=key)]
    by_pool: dict[str, list[GpuState]] = defaultdict(list)
    for gpu in candidates:
        by_pool[gpu.pool].append(gpu)
    best, best_score = None, None
    for pool_gpus in by_pool.values():
        if len(pool_gpus) < ask.count:
            continue
        by_node: dict[int, list[GpuState]] = defaultdict(list)
        for gpu in pool_gpus:
            by_node[gpu.node].append(gpu)
        # One node first (the gang talks over NVLink), else across the pool.
        groups = [g for g in by_node.values() if len(g) >= ask.count] or [pool_gpus]
        for group in groups:
            chosen = heapq.nsmallest(ask.count, group, key=key)
            score = (len({g.node for g in chosen}), [key(g) for g in chosen])
            if best_score is None or score < best_score:
                best, best_score = chosen, score
    return best


@dataclass(frozen=True)
class Holder:
    """An allocation holding slices that realtime work could reclaim."""

    allocation_id: object
    priority: str  # "offline" or "interruptible" (borrowed)
    created_at: float
    slices: tuple  # ((gpu_id, compute_units, memory_mib), …)


RECLAIM_ORDER = {"offline": 0, "interruptible": 1}


def choose_victims(ask: Ask, gpus, holders) -> tuple[list[GpuState], list] | None:
    """The fewest, youngest reclaimable allocations whose removal lets ``ask`` fit.

    Offline work goes before borrowed interruptible work; within a class, the
    youngest first (it has lost least). Returns (placement, victims) or None
    when even reclaiming everything reclaimable would not make room.
    """
    candidates = [g for g in gpus if allows(ask, g) and g.memory_mib >= ask.memory_mib and can_hold(ask, g)]
    on_gpu = defaultdict(list)
    for holder in holders:
        for gpu_id, _, _ in holder.slices:
            on_gpu[gpu_id].append(holder)
    rank = lambda h: (RECLAIM_ORDER[h.priority], -h.created_at)  # noqa: E731
    by_pool = defaultdict(list)
    for gpu in candidates:
        by_pool[gpu.pool].append(gpu)
    best = None
    for pool_gpus in by_pool.values():
        if len(pool_gpus) < ask.count:
            continue
        victims: list[Holder] = []
        freed = defaultdict(lambda: [0, 0])
        chosen: list[GpuState] = []
        for _ in range(ask.count):
            pick = None
            for gpu in pool_gpus:
                if gpu in chosen:
                    continue
                units = gpu.free_units + freed[gpu.id][0]
                mib = gpu.free_mib + freed[gpu.id][1]
                extra = []
                for holder in sorted(set(on_gpu[gpu.id]) - set(victims), key=rank):
                    if units >= ask.compute_units and mib >= ask.memory_mib:
                        break
                    extra.append(holder)
                    for gid, u, m in holder.slices:
                        if gid == gpu.id:
                            units, mib = units + u, mib + m
                if units < ask.compute_units or mib < ask.memory_mib:
                    continue
                score = (len(extra), [rank(h) for h in extra])
                if pick is None or score < pick[0]:
                    pick = (score, gpu, extra)
            if pick is None:
                break
            _, gpu, extra = pick
            chosen.append(gpu)
            for holder in extra:
                victims.append(holder)
                for gid, u, m in holder.slices:
                    freed[gid][0] += u
                    freed[gid][1] += m
            # The chosen GPU's room is now spoken for.
            freed[gpu.id][0] -= ask.compute_units
            freed[gpu.id][1] -= ask.memory_mib
        if len(chosen) == ask.count:
            score = (len(victims), sorted(rank(h) for h in victims))
            if best is None or score < best[0]:
                best = (score, chosen, victims)
    return (best[1], best[2]) if best else None


def smallest(shapes) -> list[Ask]:
    """Asks that every GPU with room for one of ``shapes`` has room for: a fraction of a GPU and a whole one apart
    (a whole GPU need not take fractions)."""
    least: dict = {}
    for shape in shapes:
        whole = shape.compute_units >= COMPUTE_UNITS_PER_GPU
        units, mib = least.get(whole, (COMPUTE_UNITS_PER_GPU, shape.memory_mib))
        least[whole] = (min(units, shape.compute_units), min(mib, shape.memory_mib))
    return [Ask(count=1, compute_units=units, memory_mib=mib) for units, mib in least.values()]
