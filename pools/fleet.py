"""
The fleet as placement sees it, kept in this process: every healthy GPU of a
live pool on a node that is not drained, with what is allocated on it.

A request picks its candidates here, in microseconds, instead of querying
for them. The view is read again at most every ``OCENTER_FLEET_SECONDS``
and this process's own reservations and releases are applied to it at once;
other processes' show up at the next read. The database stays the
authority: the statement that takes a GPU's room checks its room, health
and draining again, so a stale view costs a retry, never a wrong placement.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import replace

from django.conf import settings

from pools.placement import Ask, GpuState, allows, fits

UNITS = 100


def candidate_limit(ask: Ask) -> int:
    """How many of the policy's best GPUs a request looks at before the whole fleet."""
    return max(64, 16 * ask.count)


class FleetView:
    """GPUs bucketed by the compute units allocated on them, so the policy's best few are found without a scan.

    Bucket ``u`` holds the GPUs with ``u`` units allocated, fullest memory
    first, then by id: binpack walks the buckets from full to empty, spread
    from empty to full (and each bucket backwards).
    """

    def __init__(self, gpus):
        self.gpus = {gpu.id: gpu for gpu in gpus}
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
            costs = [g.cost for g in self.gpus.values() if (not ask.pool or g.pool == ask.pool) and (not ask.region or g.region == ask.region)]
            cheapest = min(costs) if costs else None
        spread = ask.policy == "spread"
        found = []
        for units in (range(0, top + 1) if spread else range(top, -1, -1)):
            for gpu in (self._emptiest_first(self.buckets[units]) if spread else self.buckets[units]):
                if (fits(ask, gpu) and allows(ask, gpu) and gpu.id not in exclude
                        and (cheapest is None or gpu.cost == cheapest)):
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
        self.buckets[gpu.allocated_units].remove(gpu)
        moved = replace(gpu, allocated_units=min(UNITS, max(0, gpu.allocated_units + units)),
                        allocated_mib=min(gpu.memory_mib, max(0, gpu.allocated_mib + mib)))
        self.gpus[gpu_id] = moved
        bisect.insort(self.buckets[moved.allocated_units], moved, key=self._order)


class _Cache:
    """This process's FleetView and when it was read."""

    def __init__(self):
        self._lock = threading.Lock()
        self._view = None
        self._read_at = 0.0

    def best(self, ask: Ask, *, exclude=(), limit: int | None = None, fresh: bool = False) -> list[GpuState]:
        """FleetView.best on this process's view, read again first when older than OCENTER_FLEET_SECONDS or when ``fresh``."""
        with self._lock:
            if fresh or self._view is None or time.monotonic() - self._read_at >= settings.OCENTER_FLEET_SECONDS:
                from pools.selectors import candidate_gpus

                self._read_at = time.monotonic()
                self._view = FleetView(candidate_gpus(Ask(count=1, compute_units=0, memory_mib=0), with_room=False))
            return self._view.best(ask, exclude=exclude, limit=limit)

    def age(self) -> float:
        """Seconds since the view was read (infinite before the first read)."""
        return time.monotonic() - self._read_at if self._view is not None else float("inf")

    def add(self, gpu_id, units: int, mib: int):
        with self._lock:
            if self._view is not None:
                self._view.add(gpu_id, units, mib)

    def forget(self):
        """Read it again on next use (pools or nodes changed here)."""
        with self._lock:
            self._view = None


fleet = _Cache()
