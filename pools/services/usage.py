"""
What the GPUs really do, from the agents' metrics: a point a minute per GPU
and per running allocation in compact series (``pools.series``), and the
memory that processes no claim names hold, which placement counts as taken.

Sizes, per GPU (and per allocation while it runs): 7 days of minutes are
168 rows of ~350 bytes, 90 days of hours are 90 rows of ~170 bytes: about
75 KB, so 10,000 GPUs keep ~0.75 GB, whatever the load.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.db.models import Q

from pools import series
from pools.models import Accelerator, Allocation, AllocationSeries, GpuSeries, Pool, Slice

# How often a pool's metrics become points, and how long each resolution is kept.
SAMPLE_EVERY = timedelta(seconds=60)
KEEP = {series.MINUTE: timedelta(days=7), series.HOUR: timedelta(days=90)}
PACKED = {GpuSeries: ("utilization", "memory_mib"), AllocationSeries: ("utilization", "memory_mib", "busiest", "processes")}


def sample_due(*, pool: Pool, now) -> bool:
    """Whether the pool's sync should read its agent's metrics now."""
    return pool.sampled_at is None or now - pool.sampled_at >= SAMPLE_EVERY - timedelta(seconds=1)


def pool_sample(*, pool: Pool, metrics: dict, now) -> dict:
    """Record one minute of what a pool's GPUs and running allocations did, from its agent's ``/v1/metrics``.

    Runs in the pool's sync, under its row lock: two samples of one pool never
    write at once. Returns how many GPU and allocation points were written.
    """
    gpus = {g.uuid: g for g in Accelerator.objects.filter(pool=pool, gone_at=None).only("id", "uuid", "outside_memory_mib")}
    gpu_points, outside_changed = {}, []
    for figures in metrics.get("accelerators", []):
        gpu = gpus.get(figures.get("uuid"))
        if gpu is None or ("error" in figures and "outside_memory_mib" not in figures):
            continue
        outside = max(0, int(figures.get("outside_memory_mib") or 0))
        if gpu.outside_memory_mib != outside:
            gpu.outside_memory_mib = outside
            outside_changed.append(gpu)
        # No utilization to read (a cluster without HAMi's exporter): no point, rather than a zero.
        if "error" not in figures and figures.get("utilization_percent") is not None:
            gpu_points[gpu.id] = {"utilization": _percent(figures["utilization_percent"]), "memory_mib": figures.get("memory_used_mib", 0)}
    Accelerator.objects.bulk_update(outside_changed, ["outside_memory_mib"], batch_size=1000)

    running = Slice.objects.filter(pool=pool, active=True, allocation__state=Allocation.State.RUNNING)
    slices = {str(s.id): s for s in running.only("id", "allocation_id", "compute_units")}
    totals = defaultdict(lambda: {"units": 0, "used": 0.0, "busiest": 0.0, "processes": 0, "memory_mib": 0})
    for claim in metrics.get("allocations", []):
        s = slices.get(claim.get("id"))
        if s is None or "error" in claim:
            continue
        used = float(claim.get("compute_units_used") or 0)
        total = totals[s.allocation_id]
        total["units"] += s.compute_units
        total["used"] += used
        total["busiest"] = max(total["busiest"], 100 * used / s.compute_units)
        total["processes"] += int(claim.get("processes") or 0)
        total["memory_mib"] += int(claim.get("memory_used_mib") or 0)
    allocation_points = {
        allocation_id: {"utilization": _percent(100 * t["used"] / t["units"]), "busiest": _percent(t["busiest"]),
                        "processes": t["processes"], "memory_mib": t["memory_mib"]}
        for allocation_id, t in totals.items()
    }  # fmt: skip
    _write(GpuSeries, Q(accelerator__pool=pool), "accelerator_id", gpu_points, now)
    _write(AllocationSeries, Q(allocation_id__in=running.values("allocation_id")), "allocation_id", allocation_points, now)
    return {"gpus": len(gpu_points), "allocations": len(allocation_points)}


def _percent(value) -> float:
    return max(0.0, min(100.0, float(value or 0)))


def _write(model, subjects: Q, key: str, points: dict, now, resolution: str = series.MINUTE):
    """Put each subject's point into its row for ``now`` (creating the row when it is the window's first)."""
    if not points:
        return
    start, slot = series.window(now, resolution)
    fields = PACKED[model]
    held = {row[0]: row[1:] for row in model.objects.filter(subjects, resolution=resolution, start=start).values_list(key, *fields)}
    rows = []
    for subject, values in points.items():
        packed = dict(zip(fields, (bytes(v) for v in held[subject]))) if subject in held else {
            f: series.empty_mibs(resolution) if f == "memory_mib" else series.empty_bytes(resolution) for f in fields}  # fmt: skip
        for field, value in values.items():
            packed[field] = (series.put_mib if field == "memory_mib" else series.put_byte)(packed[field], slot, value)
        rows.append(model(**{key: subject}, resolution=resolution, start=start, **packed))
    # One upsert a batch (INSERT … ON CONFLICT DO UPDATE): the hour's first minute creates the rows, the others rewrite them.
    model.objects.bulk_create(rows, batch_size=1000, update_conflicts=True, unique_fields=[key.removesuffix("_id"), "resolution", "start"],
                              update_fields=list(fields))  # fmt: skip


def series_prune(*, now) -> dict:
    """Roll finished hours of minutes up into hour points, then drop minutes older than 7 days and hours older than 90."""
    this_hour, _ = series.window(now, series.MINUTE)
    counts = {}
    for model, key in ((GpuSeries, "accelerator_id"), (AllocationSeries, "allocation_id")):
        finished = list(model.objects.filter(resolution=series.MINUTE, rolled_up=False, start__lt=this_hour).order_by("start")[:5000])
        by_hour = defaultdict(dict)
        for row in finished:
            by_hour[row.start][getattr(row, key)] = {
                field: series.mean((series.read_mibs if field == "memory_mib" else series.read_bytes)(getattr(row, field)))
                for field in PACKED[model]
            }
        for hour, points in by_hour.items():
            present = {subject: {f: v for f, v in values.items() if v is not None} for subject, values in points.items()}
            _write(model, Q(**{f"{key}__in": list(present)}), key, present, hour, series.HOUR)
        model.objects.filter(id__in=[row.id for row in finished]).update(rolled_up=True)
        deleted = 0
        for resolution, keep in KEEP.items():
            deleted += model.objects.filter(resolution=resolution, start__lt=now - keep).delete()[0]
        counts[model.__name__] = {"rolled_up": len(finished), "deleted": deleted}
    return counts
