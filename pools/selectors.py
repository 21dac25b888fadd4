"""Reads of pools and their hardware, shaped for pages and the API."""

import time
from collections import defaultdict
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, F, Prefetch, Q, Sum
from django.db.models.functions import Least
from django.utils import timezone

from ocenter.admission import UsageRow
from ocenter.lib.rows import adapted, columns, fetch, instance, param
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from ocenter.seams import seams
from pools import series
from pools.models import Accelerator, Allocation, AllocationSeries, GpuSeries, IdlePolicy, Node, Pool, Slice
from pools.placement import Ask, GpuState
from pools.queueing import PRIORITY_RANK, Waiting, dominant_share, order
from tenants.models import Project, Tenant


def pools_with_summary(pools=None) -> list[Pool]:
    """Pools with ``gpu_models`` ([(model, count)]), ``gpu_count`` and ``memory_mib`` of present GPUs.

    Two queries whatever the number of pools or GPUs.
    """
    pools = list(pools if pools is not None else Pool.objects.all())
    rows = (
        Accelerator.objects.filter(pool__in=pools, gone_at=None)
        .values("pool_id", "vendor", "model")
        .annotate(count=Count("id"), memory_mib=Sum("memory_mib"))
        .order_by("pool_id", "vendor", "model")
    )
    by_pool = defaultdict(list)
    for row in rows:
        by_pool[row["pool_id"]].append(row)
    for pool in pools:
        models = by_pool.get(pool.id, [])
        pool.gpu_models = [(f"{r['vendor']} {r['model']}", r["count"]) for r in models]
        pool.gpu_count = sum(r["count"] for r in models)
        pool.memory_mib = sum(r["memory_mib"] for r in models)
    return pools


def pool_nodes(pool: Pool) -> list[Node]:
    """The pool's nodes, present first, each with its GPUs (two queries)."""
    gpus = Accelerator.objects.order_by("index")
    nodes = pool.nodes.prefetch_related(Prefetch("accelerators", queryset=gpus))
    return sorted(nodes, key=lambda n: (n.gone_at is not None, n.name))


def pool_templates(nodes: list[Node]) -> list[dict]:
    """The templates a pool's GPUs are cut to, per model, smallest first: ``{model, name, compute_units, memory_mib,
    devices, free}``, ``free`` how many more fit now on its present, healthy GPUs (from the nodes as ``pool_nodes`` reads them)."""
    offered = {}
    for node in nodes:
        for gpu in node.accelerators.all():
            if gpu.gone_at is not None:
                continue
            for t in gpu.templates:
                row = offered.setdefault((gpu.model, t["name"]), {"model": gpu.model, **t, "devices": 0, "free": 0})
                row["devices"] += 1
                if gpu.health == Accelerator.Health.HEALTHY and not (node.draining or node.pool.draining or node.gone_at):
                    units = COMPUTE_UNITS_PER_GPU - gpu.allocated_compute_units
                    mib = gpu.memory_mib - gpu.allocated_memory_mib - gpu.outside_memory_mib
                    row["free"] += max(0, min(units // t["compute_units"], mib // t["memory_mib"]))
    return sorted(offered.values(), key=lambda r: (r["model"], r["compute_units"], r["memory_mib"]))


RECENT_USE_HALF_LIFE = timedelta(hours=1)


def fleet_totals() -> tuple[int, int]:
    """(compute units, MiB) of every present GPU."""
    row = Accelerator.objects.filter(gone_at=None).aggregate(n=Count("id"), mib=Sum("memory_mib"))
    return COMPUTE_UNITS_PER_GPU * (row["n"] or 0), row["mib"] or 0


# Recent use, summed by the database (a busy hour ends tens of thousands of allocations): each ended allocation's
# dominant share, times how long it ran (up to a half-life) over the half-life, halved for every half-life since.
# In floats (date_part, not EXTRACT's numeric: ten times faster a row).
_RECENT_USE = {
    True: """
        SELECT tenant_id, SUM(LEAST(date_part('epoch', ended_at - started_at), %(hl)s) / %(hl)s
                              * POWER(0.5::float8, date_part('epoch', %(now)s - ended_at) / %(hl)s)
                              * GREATEST(count * compute_units / %(units)s, count * memory_mib / %(mib)s))
          FROM pools_allocation WHERE ended_at >= %(since)s AND started_at IS NOT NULL GROUP BY tenant_id""",
    False: """
        SELECT tenant_id, SUM(MIN((julianday(ended_at) - julianday(started_at)) * 86400.0, %(hl)s) / %(hl)s
                              * POWER(0.5, (julianday(%(now)s) - julianday(ended_at)) * 86400.0 / %(hl)s)
                              * MAX(count * compute_units / %(units)s, count * memory_mib / %(mib)s))
          FROM pools_allocation WHERE ended_at >= %(since)s AND started_at IS NOT NULL GROUP BY tenant_id""",
}


def tenant_shares(now=None, totals=None) -> dict:
    """Each tenant's dominant share of the fleet: what it holds now plus a decaying memory of recent use.

    Three queries: the fleet's size (unless ``totals`` gives it), what each tenant holds, what each used lately
    (that one at most every OCENTER_SHARES_SECONDS, unless ``now`` is given).
    """
    total_units, total_mib = totals or fleet_totals()
    held = (
        Slice.objects.filter(active=True)
        .values("allocation__tenant_id")
        .annotate(units=Sum("compute_units"), mib=Sum("memory_mib"))
        .order_by()
    )
    shares = {r["allocation__tenant_id"]: dominant_share(r["units"], r["mib"], total_units, total_mib) for r in held}
    for tenant_id, recent in _recent_use(now, total_units, total_mib).items():
        shares[tenant_id] = shares.get(tenant_id, 0.0) + recent
    return shares


_recent_cache: dict = {}


def _recent_use(now, total_units: int, total_mib: int) -> dict:
    """``{tenant_id: recent use}`` summed by the database; without ``now``, as summed within OCENTER_SHARES_SECONDS.

    Summing reads every allocation ended in the last six half-lives (a busy
    fleet ends tens of thousands an hour), and the sum moves slowly (its
    half-life is an hour): every page, event and drain pass need not sum it again.
    """
    cached = _recent_cache.get((total_units, total_mib))
    if now is None and cached is not None and time.monotonic() - cached[0] < settings.OCENTER_SHARES_SECONDS:
        return cached[1]
    read_at, moment = time.monotonic(), now or timezone.now()
    half_life = RECENT_USE_HALF_LIFE.total_seconds()
    key = Allocation._meta.get_field("tenant")
    with connection.cursor() as cursor:
        cursor.execute(
            _RECENT_USE[connection.vendor == "postgresql"],
            {
                "hl": half_life,
                "units": float(total_units or 1),
                "mib": float(total_mib or 1),
                "since": adapted(moment - 6 * RECENT_USE_HALF_LIFE),
                "now": adapted(moment),
            },
        )
        recent = {key.to_python(tenant_id): float(used) for tenant_id, used in cursor.fetchall()}
    if now is None:
        _recent_cache.clear()
        _recent_cache[total_units, total_mib] = (read_at, recent)
    return recent


def queue_order(*, limit: int | None = None) -> list[Waiting]:
    """Queued allocations in the order they will be tried (priority, fair share, age).

    Read as bare tuples (no model, no datetime: their order by age is the
    order they are read in), each distinct shape built once: it is read
    whole for every position shown, with thousands waiting.
    """
    queued = Allocation.objects.filter(state=Allocation.State.QUEUED).order_by("created_at", "id")
    fields = ("id", "tenant_id", "priority", "count", "compute_units", "memory_mib", "policy", "vendor", "accelerator_model",
              "pool_name", "region")  # fmt: skip
    shapes, waiting = {}, []
    for age, (a_id, tenant_id, priority, *shape) in enumerate(queued.values_list(*fields)):
        shape = tuple(shape)
        ask = shapes.get(shape)
        if ask is None:
            count, units, mib, policy, vendor, model, pool, region = shape
            ask = shapes[shape] = Ask(count, units, mib, policy=policy, vendor=vendor, model=model, pool=pool, region=region)
        waiting.append(Waiting(a_id, tenant_id, priority, age, ask.count * ask.compute_units, ask.count * ask.memory_mib, ask))
    if not waiting:
        return []
    total_units, total_mib = fleet_totals()
    ordered = order(waiting, tenant_shares(totals=(total_units, total_mib)), total_units=total_units, total_mib=total_mib)
    return ordered[:limit] if limit else ordered


def queue_positions(ids=None) -> dict:
    """``{allocation_id: position}`` (1 = next), for every queued allocation or those of ``ids``.

    For a few (a page, one event) PostgreSQL works the order out where the
    queue is, and only their positions come back: the same keys as
    ``queueing.order`` (class, share with the tenant's earlier requests, age),
    the same arithmetic, so the same positions.
    """
    if ids is not None and connection.vendor == "postgresql":
        return _positions_of(list(ids))
    positions = {w.id: i for i, w in enumerate(queue_order(), start=1)}
    return positions if ids is None else {i: positions[i] for i in ids if i in positions}


_POSITIONS = """
    WITH shares AS (SELECT * FROM unnest(%(tenants)s::uuid[], %(shares)s::float8[]) AS s (tenant_id, share)),
    q AS (SELECT id, tenant_id, CASE priority {ranks} END AS rank, ROW_NUMBER() OVER (ORDER BY created_at, id) AS age,
                 COALESCE(GREATEST((count * compute_units)::float8 / %(units)s, (count * memory_mib)::float8 / %(mib)s), 0.0) AS size
            FROM pools_allocation WHERE state = %(queued)s),
    k AS (SELECT q.id, q.rank, q.age, COALESCE(s.share, 0.0) + COALESCE(SUM(q.size) OVER (PARTITION BY q.tenant_id
                 ORDER BY q.rank, q.age ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0.0) AS share
            FROM q LEFT JOIN shares s ON s.tenant_id = q.tenant_id),
    p AS (SELECT id, ROW_NUMBER() OVER (ORDER BY rank, share, age) AS position FROM k)
    SELECT id, position FROM p WHERE id = ANY(%(ids)s)"""


def _positions_of(ids: list) -> dict:
    if not ids:
        return {}
    total_units, total_mib = fleet_totals()
    shares = tenant_shares(totals=(total_units, total_mib))
    ranks = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in PRIORITY_RANK.items())
    with connection.cursor() as cursor:
        cursor.execute(
            _POSITIONS.format(ranks=ranks),
            {
                "tenants": list(shares),
                "shares": list(shares.values()),
                "units": total_units or None,  # no GPUs: no share (NULL, which GREATEST passes over)
                "mib": total_mib or None,
                "queued": Allocation.State.QUEUED,
                "ids": ids,
            },
        )
        return dict(cursor.fetchall())


def estimated_starts(allocations, positions: dict) -> dict:
    """``{allocation_id: moment}`` for the queued ones: a rough start, when the ``position``-th running lease in reach
    ends (None when no lease ends). One query per pool named among them (and one for those that name none)."""
    wanted = defaultdict(list)
    for allocation in allocations:
        if positions.get(allocation.id):
            wanted[allocation.pool_name].append((allocation.id, positions[allocation.id]))
    starts = {}
    for pool_name, asks in wanted.items():
        ends = Allocation.objects.filter(state=Allocation.State.RUNNING, expires_at__isnull=False)
        if pool_name:
            ends = ends.filter(slices__pool__name=pool_name)
        ends = list(ends.order_by("expires_at").values_list("expires_at", flat=True).distinct()[: max(p for _, p in asks)])
        starts.update({a: ends[p - 1] if p <= len(ends) else None for a, p in asks})
    return starts


def allocations_for(access):
    """The allocations this access may see."""
    return access.scope(Allocation.objects.select_related("tenant", "project"))


@cache
def _allocation_sql() -> str:
    return (
        f"SELECT {columns(Allocation, 'a')}, {columns(Tenant, 't', 't__')}, {columns(Project, 'p', 'p__')}, "
        f"{columns(Slice, 's', 's__')}, {columns(Pool, 'pl', 'pl__')}, {columns(Accelerator, 'g', 'g__')} "
        "FROM pools_allocation a JOIN tenants_tenant t ON t.id = a.tenant_id JOIN tenants_project p ON p.id = a.project_id "
        "LEFT JOIN pools_slice s ON s.allocation_id = a.id LEFT JOIN pools_pool pl ON pl.id = s.pool_id "
        'LEFT JOIN pools_accelerator g ON g.id = s.accelerator_id WHERE a.id = %s ORDER BY s."index"'
    )


def allocation_for(access, allocation_id) -> Allocation | None:
    """The allocation, with its tenant, project and slices (each with its pool and GPU), if ``access`` reaches its tenant.

    One query written out (a release's hot path), where ``allocations_for`` and a prefetch take two compiled ones.
    """
    try:
        key = param(Allocation._meta.pk, allocation_id)
    except ValidationError:
        return None
    rows = fetch(_allocation_sql(), [key])
    if not rows:
        return None
    first, reached = rows[0], access.tenant_ids()
    allocation = instance(Allocation, first, tenant=instance(Tenant, first, "t__"), project=instance(Project, first, "p__"))
    if reached is not None and allocation.tenant_id not in reached:
        return None
    allocation.keep_slices(
        instance(Slice, row, "s__", allocation=allocation, pool=instance(Pool, row, "pl__"), accelerator=instance(Accelerator, row, "g__"))
        for row in rows
        if row["s__id"] is not None
    )
    return allocation


# A slice of this size is what most work asks for: free room that cannot hold it is stranded.
TYPICAL_SLICE_UNITS = 25
TYPICAL_SLICE_MIB = 16 * 1024


def capacity(group: str) -> list[dict]:
    """Present GPUs grouped by ``pool__name`` or ``model``: how many, and the share of compute and memory handed out."""
    rows = (
        Accelerator.objects.filter(gone_at=None)
        .values(group)
        .annotate(gpus=Count("id"), used=Sum("allocated_compute_units"), mib=Sum("memory_mib"), used_mib=Sum("allocated_memory_mib"))
        .order_by(group)
    )
    return [
        {
            "name": r[group],
            "gpus": r["gpus"],
            "units_percent": 100 * r["used"] / (COMPUTE_UNITS_PER_GPU * r["gpus"]),
            "memory_percent": 100 * r["used_mib"] / r["mib"] if r["mib"] else 0,
        }
        for r in rows
    ]


def fragmentation() -> dict:
    """Free compute on GPUs that can no longer hold a typical slice, against all free compute."""
    gpus = Accelerator.objects.filter(gone_at=None, health=Accelerator.Health.HEALTHY)
    free_units = Sum(COMPUTE_UNITS_PER_GPU - F("allocated_compute_units"))
    free = gpus.aggregate(units=free_units)["units"] or 0
    stranded = (
        gpus.exclude(id__in=gpus.with_room(compute_units=TYPICAL_SLICE_UNITS, memory_mib=TYPICAL_SLICE_MIB).values("id")).aggregate(
            units=free_units
        )["units"]
        or 0
    )
    return {
        "free_units": free,
        "stranded_units": stranded,
        "percent": 100 * stranded / free if free else 0,
        "typical_units": TYPICAL_SLICE_UNITS,
        "typical_mib": TYPICAL_SLICE_MIB,
    }


def queue_summary() -> dict:
    queued = Allocation.objects.filter(state=Allocation.State.QUEUED)
    oldest = queued.order_by("created_at").values_list("created_at", flat=True).first()
    return {"depth": queued.count(), "oldest": oldest}


def allowed_scopes(quotas) -> frozenset:
    """(pool, model) scopes of a tenant's tenant-wide quotas: where it may place at all."""
    return frozenset((q.pool_name, q.accelerator_model) for q in quotas if q.project_id is None)


def candidate_gpus(ask: Ask, *, with_room: bool, exclude=(), only=None, draining_too: bool = False) -> list[GpuState]:
    """GPUs that meet the constraints and take placements now (or, ``draining_too``, once undrained); ``only``: of these ids.

    One query (``Accelerator.objects.placeable()``, with its pool's name, region and cost).
    """
    gpus = Accelerator.objects.serviceable() if draining_too else Accelerator.objects.placeable()
    if ask.pool:
        gpus = gpus.filter(pool__name=ask.pool)
    if ask.region:
        gpus = gpus.filter(pool__region=ask.region)
    if with_room:
        gpus = gpus.with_room(compute_units=ask.compute_units, memory_mib=ask.memory_mib)
    if ask.vendor:
        gpus = gpus.filter(vendor__iexact=ask.vendor)
    if ask.model:
        gpus = gpus.filter(model=ask.model)
    if exclude:
        gpus = gpus.exclude(id__in=exclude)
    if only is not None:
        gpus = gpus.filter(id__in=only)
    rows = gpus.order_by().values_list("id", "pool_id", "pool__name", "pool__region", "pool__cost_weight", "node_id", "vendor", "model",
                            "memory_mib", "allocated_compute_units", "allocated_memory_mib", "outside_memory_mib", "fractional",
                            "uuid", "templates")  # fmt: skip
    # Memory that outside processes hold counts as handed out: it is not there to be placed on.
    return [
        GpuState(gid, pool, region, node, vendor, model, mib, units, min(mib, used_mib + outside), cost, pid, fractional, uuid, _shapes(t))
        for gid, pid, pool, region, cost, node, vendor, model, mib, units, used_mib, outside, fractional, uuid, t in rows
    ]


def _shapes(templates) -> tuple:
    """(compute units, MiB) of each template a GPU is cut to."""
    return tuple((t["compute_units"], t["memory_mib"]) for t in templates or ())


def placeable_rooms() -> list[tuple]:
    """``(id, memory_mib, allocated units, allocated MiB, fractional)`` of every GPU that takes placements now.

    What changes between two reads of the fleet, and no more (a GPU never moves to another pool): a fraction of the
    cost of reading the GPUs whole. Memory that outside processes hold counts as handed out (as in ``candidate_gpus``).
    """
    held = Least("memory_mib", F("allocated_memory_mib") + F("outside_memory_mib"))
    return list(
        Accelerator.objects.placeable()
        .order_by()
        .annotate(held=held)
        .values_list("id", "memory_mib", "allocated_compute_units", "held", "fractional")
    )


_TENANT_USAGE = """
    SELECT a.tenant_id, a.project_id, p.name, g.model, a.priority, SUM(s.compute_units), SUM(s.memory_mib), COUNT(*)
      FROM pools_slice s JOIN pools_allocation a ON a.id = s.allocation_id
      JOIN pools_pool p ON p.id = s.pool_id JOIN pools_accelerator g ON g.id = s.accelerator_id
     WHERE s.active AND a.tenant_id IN ({})
     GROUP BY a.tenant_id, a.project_id, p.name, g.model, a.priority"""


def tenant_usage(tenant_ids) -> dict:
    """``{tenant_id: [UsageRow]}``: the active slices of these tenants, summed (the answer to ``ocenter.seams.usage``).

    Written out (every request reads its tenant's): compiled as a queryset, it cost more than it takes to run.
    """
    tenant_ids = list(tenant_ids)
    if not tenant_ids:
        return {}
    key = Allocation._meta.get_field("tenant")
    with connection.cursor() as cursor:
        cursor.execute(_TENANT_USAGE.format(", ".join(["%s"] * len(tenant_ids))), [param(key, t) for t in tenant_ids])
        rows = cursor.fetchall()
    usage: dict = {}
    for tenant_id, project_id, pool, model, priority, units, mib, slices in rows:
        usage.setdefault(key.to_python(tenant_id), []).append(
            UsageRow(Allocation._meta.get_field("project").to_python(project_id), pool, model, priority, units, mib, slices)
        )
    return usage


# --- what the GPUs did ------------------------------------------------------------


def _points(rows, fields, since, now):
    """Each row's points within [since, now], oldest first: ``{"at": …, field: value, …}`` (slots with no data left out)."""
    points = []
    for row in rows:
        step = series.STEP[row.resolution]
        columns = {f: (series.read_mibs if f == "memory_mib" else series.read_bytes)(getattr(row, f)) for f in fields}
        for slot in range(series.WIDTH[row.resolution]):
            at = row.start + slot * step
            values = {f: column[slot] for f, column in columns.items()}
            if since <= at <= now and any(v is not None for v in values.values()):
                points.append({"at": at, **values})
    return points


def usage_resolution(since, now, asked: str = "") -> str:
    """Minutes for the last day (or when asked for, within the 7 days they are kept); hours beyond."""
    if asked in (series.MINUTE, series.HOUR):
        return series.MINUTE if asked == series.MINUTE and now - since <= timedelta(days=7) else series.HOUR
    return series.MINUTE if now - since <= timedelta(days=1) else series.HOUR


def allocation_usage(allocation: Allocation, *, since, now, resolution: str) -> list[dict]:
    """The allocation's points: utilization (mean of its slices, percent of its own compute), the busiest slice's, memory, processes."""
    rows = AllocationSeries.objects.filter(
        allocation=allocation, resolution=resolution, start__gte=series.window(since, resolution)[0], start__lte=now
    ).order_by("start")
    return _points(rows, ("utilization", "busiest", "memory_mib", "processes"), since, now)


def pool_utilization(pool: Pool | None, *, since, now, resolution: str) -> list[dict]:
    """The pool's points (None: the fleet's): its GPUs' mean utilization and their memory used together, with how many GPUs reported."""
    rows = GpuSeries.objects.filter(resolution=resolution, start__gte=series.window(since, resolution)[0], start__lte=now)
    rows = (rows if pool is None else rows.filter(accelerator__pool=pool)).order_by("start")
    by_moment: dict = {}
    for point in _points(rows, ("utilization", "memory_mib"), since, now):
        moment = by_moment.setdefault(point["at"], {"at": point["at"], "utilization": [], "memory_mib": 0, "gpus": 0})
        if point["utilization"] is not None:
            moment["utilization"].append(point["utilization"])
        moment["memory_mib"] += point["memory_mib"] or 0
        moment["gpus"] += 1
    return [{**m, "utilization": series.mean(m["utilization"])} for _, m in sorted(by_moment.items())]


def latest_usage(allocation_ids) -> dict:
    """``{allocation_id: {"utilization", "busiest", "memory_mib", "processes", "at"}}``: each one's last minute point (one query)."""
    now = timezone.now()
    rows = AllocationSeries.objects.filter(allocation_id__in=list(allocation_ids), resolution=series.MINUTE,
                                           start__gte=now - timedelta(hours=2)).order_by("start")  # fmt: skip
    latest = {}
    for row in rows:
        points = _points([row], ("utilization", "busiest", "memory_mib", "processes"), row.start, now)
        if points:
            latest[row.allocation_id] = points[-1]
    return latest


def allocations_activity(allocations) -> dict:
    """``{allocation_id: {"usage": its last point or None, "idle": {since, flagged_at, acted_at, spent} or None}}``.

    For a page or a response at once: one series query, and one cost reading for the idle ones.
    """
    allocations = list(allocations)
    running = [a.id for a in allocations if a.state == Allocation.State.RUNNING]
    usage = latest_usage(running) if running else {}
    idle = {a.id: a.idle_since for a in allocations if a.idle_flagged_at and a.state == Allocation.State.RUNNING}
    spent = seams.cost_since(idle, timezone.now()) if idle else {}
    return {
        a.id: {
            "usage": usage.get(a.id),
            "idle": {"since": a.idle_since, "flagged_at": a.idle_flagged_at, "acted_at": a.idle_acted_at, "spent": spent.get(a.id)}
            if a.id in idle else None,
        }
        for a in allocations
    }  # fmt: skip


def idle_policy_for(tenant_id, policies: dict | None = None) -> IdlePolicy:
    """The tenant's own policy, else the platform's, else the built-in default (not stored)."""
    if policies is None:
        policies = {p.tenant_id: p for p in IdlePolicy.objects.filter(Q(tenant_id=tenant_id) | Q(platform=True))}
    return policies.get(tenant_id) or policies.get(None) or IdlePolicy(platform=True)


def heatmap(pool=None, gpu_ids=None) -> dict:
    """Every present GPU (of ``pool``, a Pool or its id; of ``gpu_ids``, ids or a query of them), compact for the heatmap's
    script: ``{"gpus": [[id, pool, node, index, model, memory MiB, allocated units, allocated MiB, utilization or None,
    health], …], "held": {id: [[tenant, units, MiB, allocation], …]}}``. Three queries: the GPUs, their active slices,
    their last hour of utilization (its last point)."""
    gpus = Accelerator.objects.filter(gone_at=None)
    if pool is not None:
        gpus = gpus.filter(pool=pool)
    if gpu_ids is not None:
        gpus = gpus.filter(id__in=gpu_ids)
    fields = ("id", "pool__name", "node__name", "index", "model", "memory_mib", "allocated_compute_units", "allocated_memory_mib", "health")
    rows = list(gpus.order_by("pool__name", "node__name", "index").values_list(*fields))
    held = defaultdict(list)
    slices = Slice.objects.filter(active=True, accelerator__in=gpus)
    for gpu_id, tenant, units, mib, allocation_id in slices.values_list(
        "accelerator_id", "allocation__tenant__slug", "compute_units", "memory_mib", "allocation_id"
    ):
        held[gpu_id].append([tenant, units, mib, str(allocation_id)])
    last = {}
    hour = series.window(timezone.now(), series.MINUTE)[0]
    recent = GpuSeries.objects.filter(resolution=series.MINUTE, start__gte=hour - series.SPAN[series.MINUTE], accelerator__in=gpus)
    for gpu_id, packed in recent.order_by("start").values_list("accelerator_id", "utilization"):
        points = [p for p in series.read_bytes(packed) if p is not None]
        if points:
            last[gpu_id] = points[-1]
    return {"gpus": [[*row[:8], last.get(row[0]), row[8]] for row in rows], "held": dict(held)}


def template_names(model: str) -> set[str]:
    """The names of the templates present GPUs of a model are cut to (none for a model not cut to templates)."""
    kinds = Accelerator.objects.filter(gone_at=None, model=model).order_by().values_list("templates", flat=True).distinct()
    return {t["name"] for kind in kinds for t in kind}


# What templates_asked answered, per constraint: (when, answer). Hardware changes only when a pool syncs, so an answer
# is kept as long as placement keeps its view of the fleet (OCENTER_FLEET_SECONDS); at most _TEMPLATES_KEPT of them.
_templates_seen: dict = {}
_TEMPLATES_KEPT = 1024


def templates_asked(*, vendor: str, model: str, pool_name: str, region: str) -> list[dict] | None:
    """The templates every present GPU a request is constrained to is cut to, when they are all cut alike; else None.

    A request for hardware cut to templates (an Ascend model, or a pool of it) is rounded up to one of them; a request
    that could land on hardware of either kind is not, and GPUs cut to templates take only their templates' shapes.
    Read at most once per OCENTER_FLEET_SECONDS a process for each constraint (it scans the GPUs it names).
    """
    if not (vendor or model or pool_name):
        return None
    key, now = (vendor.lower(), model, pool_name, region), time.monotonic()
    seen = _templates_seen.get(key)
    if seen is not None and now - seen[0] < settings.OCENTER_FLEET_SECONDS:
        return seen[1]
    gpus = Accelerator.objects.filter(gone_at=None)
    if vendor:
        gpus = gpus.filter(vendor__iexact=vendor)
    if model:
        gpus = gpus.filter(model=model)
    if pool_name:
        gpus = gpus.filter(pool__name=pool_name)
    if region:
        gpus = gpus.filter(pool__region=region)
    kinds = list(gpus.order_by().values_list("templates", flat=True).distinct()[:2])
    answer = kinds[0] if len(kinds) == 1 and kinds[0] else None
    if len(_templates_seen) >= _TEMPLATES_KEPT:
        _templates_seen.clear()  # constraints are what requests name: never more than this many kept
    _templates_seen[key] = (now, answer)
    return answer
