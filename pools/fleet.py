"""
The fleet as placement sees it, kept in this process: every healthy GPU of a
live pool on a node that is not drained, with what is allocated on it.

A request picks its candidates here, in microseconds, instead of querying
for them. Once it is older than ``OCENTER_FLEET_SECONDS`` it catches up with
the database in the background (each GPU's room is read, and only the GPUs
that changed are taken again), and this process's own reservations and releases
are applied to it as they commit; other processes' show up at the next catch-up. The database stays the
authority: the statement that takes a GPU's room checks its room, health
and draining again, so a stale view costs a retry, never a wrong placement.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from dataclasses import replace

from django.conf import settings

from ocenter.lib.units import COMPUTE_UNITS_PER_GPU as UNITS
from pools.models import Pool
from pools.placement import Ask, GpuState, allows, fits
from pools.selectors import candidate_gpus, placeable_rooms

log = logging.getLogger(__name__)


def candidate_limit(ask: Ask) -> int:
    """How many of the policy's best GPUs a request looks at before the whole fleet."""
    return max(64, 16 * ask.count)


class FleetView:
    """GPUs bucketed by the compute units allocated on them, so the policy's best few are found without a scan.

    Bucket ``u`` holds the GPUs with ``u`` units allocated, fullest memory
    first, then by id: binpack walks the buckets from full to empty, spread
    from empty to full (each bucket from its emptiest memory).
    """

    def __init__(self, gpus, pools=None):
        self.gpus = {gpu.id: gpu for gpu in gpus}
        self.pools = pools or {}
        self.pool_costs = {(gpu.pool, gpu.region): gpu.cost for gpu in self.gpus.values()}
        self.buckets = [[] for _ in range(UNITS + 1)]
        for gpu in sorted(self.gpus.values(), key=self._order):
            self.buckets[gpu.allocated_units].append(gpu)

    @staticmethod
    def _order(gpu: GpuState):
        return (-gpu.allocated_mib, gpu.id)

    def best(self, ask: Ask, *, exclude=(), limit: int | None = None) -> list[GpuState]:
        """GPUs with room for one slice of ``ask`` that its constraints allow, in the policy's order (``limit`` at most)."""
        top = UNITS - ask.compute_units
        if top < 0:
            return []
        cheapest = None
        if ask.policy == "cheapest" and limit:  # the best few: of the lowest cost among the pools it may use, packed
            costs = [
                cost
                for (pool, region), cost in self.pool_costs.items()
                if (not ask.pool or pool == ask.pool) and (not ask.region or region == ask.region)
            ]
            cheapest = min(costs) if costs else None
        spread = ask.policy == "spread"
        found = []
        for units in range(0, top + 1) if spread else range(top, -1, -1):
            for gpu in self._emptiest_first(self.buckets[units]) if spread else self.buckets[units]:
                if fits(ask, gpu) and allows(ask, gpu) and gpu.id not in exclude and (cheapest is None or gpu.cost == cheapest):
                    found.append(gpu)
                    if len(found) == limit:
                        return found
        return found

    def _emptiest_first(self, bucket):
        """A bucket by memory allocated, least first; equal ones by id, as placement breaks ties."""
        end = len(bucket)
        while end:
            start = bisect.bisect_left(bucket, (-bucket[end - 1].allocated_mib,), hi=end, key=self._order)
            for i in range(start, end):
                yield bucket[i]
            end = start

    def add(self, gpu_id, units: int, mib: int):
        """Change what is allocated on one GPU by ``units`` and ``mib`` (negative to give back)."""
        gpu = self.gpus.get(gpu_id)
        if gpu is None:
            return
        self._remove(gpu)
        moved = replace(
            gpu,
            allocated_units=min(UNITS, max(0, gpu.allocated_units + units)),
            allocated_mib=min(gpu.memory_mib, max(0, gpu.allocated_mib + mib)),
        )
        self.gpus[gpu_id] = moved
        bisect.insort(self.buckets[moved.allocated_units], moved, key=self._order)

    def _remove(self, gpu: GpuState):
        bucket = self.buckets[gpu.allocated_units]
        del bucket[bisect.bisect_left(bucket, self._order(gpu), key=self._order)]  # (memory, id) is unique: it is that GPU

    def merge(self, gpus, *, read=()):
        """Take ``gpus`` as they are now in the database; of the ids in ``read`` (read with them), drop those not among them."""
        found = {gpu.id: gpu for gpu in gpus}
        for gpu_id in {*found, *read}:
            old = self.gpus.pop(gpu_id, None)
            if old is not None:
                self._remove(old)
            new = found.get(gpu_id)
            if new is not None:
                self.gpus[gpu_id] = new
                self.pool_costs[new.pool, new.region] = new.cost
                bisect.insort(self.buckets[new.allocated_units], new, key=self._order)

    def sync(self, rooms) -> list:
        """Take what is allocated on each GPU from ``rooms`` (``placeable_rooms()``), drop the GPUs not there.

        Returns the ids this view does not hold as they are (new to it, or changed in size): read them whole.
        """
        changed, unknown = [], []
        for gpu_id, memory_mib, units, mib, fractional in rooms:
            gpu = self.gpus.get(gpu_id)
            if gpu is None or gpu.memory_mib != memory_mib:
                unknown.append(gpu_id)
            elif (gpu.allocated_units, gpu.allocated_mib, gpu.fractional) != (units, mib, fractional):
                changed.append(replace(gpu, allocated_units=units, allocated_mib=mib, fractional=fractional))
        self.merge(changed, read=self.gpus.keys() - {row[0] for row in rooms})
        return unknown


ANY = Ask(count=1, compute_units=0, memory_mib=0)


def _pools(pool_ids) -> dict:
    # A pool's agent URL and token are fixed when it is registered: claims take them from here.
    ids = set(pool_ids)
    return {pool.id: pool for pool in Pool.objects.filter(id__in=ids)} if ids else {}


def _read() -> FleetView:
    gpus = candidate_gpus(ANY, with_room=False)
    return FleetView(gpus, _pools(gpu.pool_id for gpu in gpus))


def _placing(pool: Pool):
    """What of a pool its GPUs' places in the view depend on."""
    return pool.name, pool.region, pool.cost_weight


class _Cache:
    """This process's FleetView: brought up to the database in the background once it is older than OCENTER_FLEET_SECONDS.

    Requests go on with the old view meanwhile (reading 10,000 GPUs takes
    ~0.1 s here, and a request holds its tenant's lock); only the first
    request, or a setting of 0, reads it in line. Where the view is wrong,
    only the GPUs in question are read again (``refresh``, ``correct``).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._view = None
        self._read_at = 0.0
        self._reading = False

    def best(self, ask: Ask, *, exclude=(), limit: int | None = None) -> list[GpuState]:
        """FleetView.best on this process's view (read first if there is none)."""
        view = self._current()
        with self._lock:
            return view.best(ask, exclude=exclude, limit=limit)

    def snapshot(self) -> list[GpuState]:
        """Every GPU in this process's view (placeable ones, with what is allocated on each), as read."""
        view = self._current()
        with self._lock:
            return list(view.gpus.values())

    def _current(self) -> FleetView:
        seconds = settings.OCENTER_FLEET_SECONDS
        with self._lock:
            view = None if seconds <= 0 else self._view
            if view is not None and time.monotonic() - self._read_at >= seconds and not self._reading:
                self._reading = True
                threading.Thread(target=self._read_in_background, name="ocenter-fleet", daemon=True).start()
        if view is None:
            read_at, view = time.monotonic(), _read()
            with self._lock:
                self._view, self._read_at = view, read_at
        return view

    def refresh(self, ask: Ask):
        """The view shows no room for ``ask``: read the GPUs that have it in the database (none, when the view is right).

        Other processes' releases show up here before the next full read, at
        the cost of one narrow query instead of the whole fleet.
        """
        self._merge(candidate_gpus(ask, with_room=True))

    def correct(self, gpu_ids: set):
        """Room on these GPUs could not be taken: read them again (another process took it, or they went)."""
        self._merge(candidate_gpus(ANY, with_room=False, only=list(gpu_ids)), read=gpu_ids)

    def _merge(self, gpus, read=()):
        view = self._current()
        pools = _pools({gpu.pool_id for gpu in gpus} - view.pools.keys())
        with self._lock:
            view.pools.update(pools)
            view.merge(gpus, read=read)

    def _read_in_background(self):
        from django.db import connections

        try:
            self.catch_up()
        except Exception:  # the database is away: requests keep the old view, and the next one tries again
            log.warning("could not read the fleet for placement", exc_info=True)
        finally:
            self._reading = False
            connections.close_all()  # this thread's own

    def catch_up(self):
        """Bring the view up to the database: only the GPUs whose room changed are taken again (all of them when a pool changed).

        Reading 10,000 GPUs whole costs ~45 ms of this process's CPU, catching up ~11 ms: requests running beside it feel the difference.
        """
        read_at, view = time.monotonic(), self._view
        rooms = placeable_rooms()
        pools = {pool.id: pool for pool in Pool.objects.placeable()}
        if view is None or any(_placing(pool) != _placing(view.pools[pool.id]) for pool in pools.values() if pool.id in view.pools):
            view = _read()
            with self._lock:
                self._view, self._read_at = view, read_at
            return
        with self._lock:
            unknown = view.sync(rooms)
        gpus = candidate_gpus(ANY, with_room=False, only=unknown) if unknown else []
        with self._lock:
            view.pools.update(pools)
            view.merge(gpus)
            self._read_at = read_at

    def pool(self, pool_id) -> Pool:
        """The pool of a GPU in the view (its row as read with it), or from the database."""
        with self._lock:
            pool = self._view.pools.get(pool_id) if self._view is not None else None
        return pool or Pool.objects.get(id=pool_id)

    def add(self, gpu_id, units: int, mib: int):
        """Apply this process's own committed change to the view."""
        with self._lock:
            if self._view is not None:
                self._view.add(gpu_id, units, mib)

    def forget(self):
        """Read it again on next use."""
        with self._lock:
            self._view = None


fleet = _Cache()
