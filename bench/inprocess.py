"""In-process figures: placement over 10,000 GPUs (half full), one metering run over 100,000 running allocations,
the console overview with 10,000 GPUs and 50,000 allocations, a minute of one pool's metrics into the series. Prints JSON.

Run by bench/run.py against the bench database (after the HTTP load).
"""

import json
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import AutoField, Count, Sum  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models import SliceMeter, UsageRecord  # noqa: E402
from billing.services import usage_meter  # noqa: E402
from pools.fleet import candidate_limit, fleet  # noqa: E402
from pools.models import Accelerator, Allocation, AllocationEvent, Pool, Slice  # noqa: E402
from pools.placement import Ask, place  # noqa: E402
from pools.selectors import candidate_gpus  # noqa: E402
from pools.services.usage import pool_sample  # noqa: E402
from tenants.models import Tenant  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


SIZES = [(10, 4096), (25, 16384), (50, 40960), (100, 81920)]


def _asks(rng, n):
    return [
        Ask(count=rng.choice([1, 1, 1, 2, 4]), compute_units=units, memory_mib=mib, policy=rng.choice(["binpack", "spread"]))
        for units, mib in (rng.choice(SIZES) for _ in range(n))
    ]


def _timed(fn, asks, before=None):
    """p50 and p99 of ``fn(ask)`` over ``asks``; ``before(ask)``, untimed, ahead of each."""
    times = []
    for ask in asks:
        if before is not None:
            before(ask)
        started = time.perf_counter()
        fn(ask)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": pct(times, 50), "p99_ms": pct(times, 99)}


def placement(iterations=1000):
    """The decision as a request makes it, over the bench's 10,000 GPUs made half full with mixed slices.

    ``decision``: the policy's best few from this process's view of the fleet, and the choice among
    them; ``read``: reading that view whole from PostgreSQL (a process's first request); ``catch_up``: bringing it
    up to the database after 500 GPUs changed (in the background, every OCENTER_FLEET_SECONDS per process); ``full_scan``:
    the pure function over all 10,000 (the fallback when the best few cannot hold a gang).
    """
    rng = random.Random(1)
    with connection.cursor() as cursor:  # half full: a random mix of slice sizes on every GPU, about 50 units each
        cursor.execute("""UPDATE pools_accelerator SET
            allocated_compute_units = (ARRAY[0, 25, 50, 75, 100])[1 + floor(random() * 5)::int],
            allocated_memory_mib = (ARRAY[0, 20480, 40960])[1 + floor(random() * 3)::int] WHERE gone_at IS NULL""")
    try:
        asks = _asks(rng, iterations)
        reads = _timed(lambda ask: (fleet.forget(), fleet.best(ask, limit=1)), asks[:20])
        catch_ups = _timed(lambda ask: fleet.catch_up(), asks[:20], before=lambda ask: _others_change(500))
        decision = _timed(lambda ask: place(ask, fleet.best(ask, limit=candidate_limit(ask))), asks)
        everything = candidate_gpus(Ask(count=1, compute_units=0, memory_mib=0), with_room=False)
        full_scan = _timed(lambda ask: place(ask, everything), asks[:200])
    finally:
        Accelerator.objects.update(allocated_compute_units=0, allocated_memory_mib=0)
    return {"gpus": len(everything), "iterations": iterations, **decision, "read": reads, "catch_up": catch_ups, "full_scan": full_scan}


def _others_change(n):
    """What other processes do between two catch-ups: ``n`` GPUs' room changes (~80 cycles/s for 5 s)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE pools_accelerator SET allocated_compute_units = (ARRAY[0, 25, 50, 75])[1 + floor(random() * 4)::int]
                WHERE id IN (SELECT id FROM pools_accelerator ORDER BY random() LIMIT %s)""",
            [n],
        )


def running_allocations(count, began):
    """``count`` allocations with one slice each, spread over the fleet, started one after another over the hour from
    ``began`` (as work starts: the ledger's hour marks fall at different minutes); metered up to their start."""
    tenant = Tenant.objects.order_by("slug").first()
    project = tenant.projects.first()
    gpus = list(Accelerator.objects.filter(gone_at=None).values_list("id", "pool_id"))
    allocations = [
        Allocation(
            id=uuid.uuid4(),
            tenant=tenant,
            project=project,
            compute_units=10,
            memory_mib=1024,
            state=Allocation.State.RUNNING,
            started_at=began + timedelta(seconds=3600 * i / max(count, 1)),
        )
        for i in range(count)
    ]
    Allocation.objects.bulk_create(allocations, batch_size=5000)
    slices = Slice.objects.bulk_create(
        [
            Slice(
                allocation=a,
                accelerator_id=gpus[i % len(gpus)][0],
                pool_id=gpus[i % len(gpus)][1],
                index=0,
                compute_units=10,
                memory_mib=1024,
                started_at=a.started_at,
            )
            for i, a in enumerate(allocations)
        ],
        batch_size=5000,
    )
    SliceMeter.objects.bulk_create(
        [SliceMeter(slice_id=s.id, metered_until=s.started_at) for s in slices],
        batch_size=5000,
    )
    AllocationEvent.objects.bulk_create(
        [AllocationEvent(allocation=a, from_state="claiming", to_state="running", actor_label="bench") for a in allocations],
        batch_size=5000,
    )
    AllocationEvent.objects.filter(actor_label="bench").update(at=began)
    with connection.cursor() as cursor:  # as autovacuum would have by the next minute: bulk-loaded tables have no statistics yet
        cursor.execute("ANALYZE pools_allocation, pools_slice, pools_allocationevent, billing_slicemeter, billing_usagerecord")


def metering(began):
    """Runs a minute apart once every slice has run an hour (each closes ~1/60 of the hours: the steady state), then one
    an hour later, when every slice has an hour to close at once (the most a run writes)."""
    runs = []
    for minutes in (61, 62, 63, 121):
        started = time.perf_counter()
        written = usage_meter(now=began + timedelta(minutes=minutes))
        runs.append({"seconds": round(time.perf_counter() - started, 2), "records": written})
    running = Allocation.objects.filter(state=Allocation.State.RUNNING).count()
    metered = UsageRecord.objects.aggregate(seconds=Sum("seconds"))["seconds"] or 0
    return {
        "running_allocations": running,
        "runs": runs,
        "median_seconds": statistics.median(r["seconds"] for r in runs[:3]),
        "every_hour_at_once_seconds": runs[3]["seconds"],
        # Records a slice a day at this rate: records over slice-days metered.
        "records_per_slice_day": round(UsageRecord.objects.count() / (float(metered) / 86400), 1) if metered else None,
    }


def sampling():
    """One minute of the biggest pool's metrics into the series, as its sync writes them: the first minute of an hour
    creates the rows, the next ones write into them."""
    pool = Pool.objects.annotate(n=Count("accelerators")).order_by("-n").first()
    gpus = list(Accelerator.objects.filter(pool=pool).values_list("uuid", flat=True))
    running = Slice.objects.filter(pool=pool, active=True, allocation__state=Allocation.State.RUNNING)
    claims = list(running.values_list("id", "compute_units"))
    metrics = {
        "accelerators": [{"uuid": u, "utilization_percent": 40.0, "memory_used_mib": 30_000, "outside_memory_mib": 0} for u in gpus],
        "allocations": [{"id": str(i), "compute_units_used": units / 2, "processes": 1, "memory_used_mib": 1000} for i, units in claims],
    }
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    runs = []
    for minute in range(3):
        with transaction.atomic():
            started = time.perf_counter()
            pool_sample(pool=pool, metrics=metrics, now=hour + timedelta(minutes=minute))
            runs.append(round(time.perf_counter() - started, 2))
    return {"gpus": len(gpus), "slices": len(claims), "runs_seconds": runs}


def _ms(fn, repeat=3):
    """(median ms, queries of the last call) of ``fn()``."""
    times, queries = [], 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        queries = len(captured)
    return round(statistics.median(times), 1), queries


def queue_curve(sizes=(100, 1000, 5000)):
    """The cost of a full queue: the fleet made full, then 100, 1,000 and 5,000 requests waiting from 32 tenants."""
    from ocenter.consumers import _render_allocation
    from pools.selectors import queue_positions
    from pools.services.allocations import queue_drain

    tenants = list(Tenant.objects.filter(slug__startswith="bench-").order_by("slug"))
    projects = {t.id: t.projects.first() for t in tenants}
    staff = get_user_model().objects.create_user(f"bench-queue-{uuid.uuid4().hex[:6]}", is_staff=True)
    client, member = Client(), Client()
    client.force_login(staff)
    member.force_login(tenants[0].memberships.first().user)
    Accelerator.objects.update(allocated_compute_units=100)  # every GPU full: what asks for room waits
    fleet.forget()
    whole = {"project": str(projects[tenants[0].id].id), "compute_units": 100, "memory_mib": 1024}
    rows, curve = 0, []
    try:
        for size in sizes:
            owners = [tenants[i % len(tenants)] for i in range(size - rows)]
            Allocation.objects.bulk_create(
                [Allocation(tenant=t, project=projects[t.id], compute_units=50, memory_mib=4096, state="queued") for t in owners],
                batch_size=5000,
            )
            rows = size
            queued = Allocation.objects.filter(state=Allocation.State.QUEUED).order_by("created_at").last()
            event = {"kind": "allocation.updated", "allocation": str(queued.id), "from": "queued", "to": "queued"}
            point = {"waiting": size}
            point["positions_ms"], _ = _ms(queue_positions)
            point["post_queued_ms"], point["post_queued_queries"] = _ms(
                lambda: member.post("/api/v1/allocations", whole, content_type="application/json")
            )
            point["list_page_ms"], point["list_page_queries"] = _ms(lambda: client.get("/api/v1/allocations?state=queued"))
            point["event_ms"], _ = _ms(lambda event=event: _render_allocation(event, True))
            point["drain_nothing_fits_ms"], point["drain_queries"] = _ms(queue_drain)
            point["drain_one_gpu_freed_ms"], _ = _ms(lambda: (_free_one_gpu(), queue_drain()))
            rows = Allocation.objects.filter(state=Allocation.State.QUEUED).count()
            curve.append(point)
    finally:
        Allocation.objects.filter(state=Allocation.State.QUEUED).delete()
        Accelerator.objects.update(allocated_compute_units=0)
        fleet.forget()
    return curve


def _copies(model, template_id, n, **columns):
    """``n`` copies of one row of ``model``, made by PostgreSQL; ``columns``: SQL over ``t`` (the row) and ``g`` (1…n)."""
    names = [f.column for f in model._meta.concrete_fields if f.column in columns or not isinstance(f, AutoField)]
    quoted = ", ".join(connection.ops.quote_name(c) for c in names)
    chosen = ", ".join(columns.get(c, f"t.{connection.ops.quote_name(c)}") for c in names)
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({quoted}) SELECT {chosen} FROM {table} t, generate_series(1, %s) g WHERE t.id = %s",
            [n, template_id],
        )
        cursor.execute(f"ANALYZE {table}")


def long_lists(rows=1_000_000):
    """The first page of the allocations (API) and of the audit log (API and console) with a million rows each.

    The rows ended days ago (out of fair share's recent use) and are deleted afterwards.
    """
    from ocenter.models import AuditEntry

    tenant = Tenant.objects.order_by("slug").first()
    long_ago = timezone.now() - timedelta(days=3)
    template = Allocation.objects.create(tenant=tenant, project=tenant.projects.first(), compute_units=10, memory_mib=1024,
                                         state=Allocation.State.RELEASED, started_at=long_ago, ended_at=long_ago)  # fmt: skip
    entry = AuditEntry.objects.create(actor_label="bench", action="bench.row", object_type="bench", tenant_id=tenant.id)
    Allocation.objects.filter(id=template.id).update(created_at=long_ago)
    AuditEntry.objects.filter(id=entry.id).update(at=long_ago)
    staff = get_user_model().objects.create_user(f"bench-lists-{uuid.uuid4().hex[:6]}", is_staff=True)
    client = Client()
    client.force_login(staff)
    try:
        shift = "t.{} - g * interval '1 second'"
        _copies(Allocation, template.id, rows - 1, id="gen_random_uuid()", created_at=shift.format("created_at"),
                ended_at=shift.format("ended_at"))  # fmt: skip
        _copies(AuditEntry, entry.id, rows - 1, id="gen_random_uuid()", at=shift.format("at"))
        pages = {}
        paths = {"allocations_api": "/api/v1/allocations", "audit_api": "/api/v1/audit", "audit_console": "/console/audit/"}
        for name, path in paths.items():
            client.get(path)
            pages[name], pages[f"{name}_queries"] = _ms(lambda path=path: client.get(path))
        return {"rows": rows, **pages}
    finally:  # by SQL: the copies have no rows of their own elsewhere, and the ORM would load each to cascade
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM pools_allocation WHERE tenant_id = %s AND created_at <= %s", [tenant.id, long_ago])
            cursor.execute("DELETE FROM ocenter_auditentry WHERE action = 'bench.row'")


def ledger(records=1_000_000):
    """The console overview as the ledger grows: as metering left it, then with a million older records copied in."""
    template = UsageRecord.objects.order_by("start").first()
    before = overview()
    try:
        hours = "t.{} - g * interval '1 hour'"  # records of at most an hour, a whole hour apart: no two overlap
        _copies(UsageRecord, template.id, records, start=hours.format("start"), end=hours.format("end"), day="t.day - (g / 24 + 1)")
        after = overview()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM billing_usagerecord WHERE slice_id = %s AND start < %s", [template.slice_id, template.start])
    return {"records_before": UsageRecord.objects.count(), "records_added": records, "before_ms": before["median_ms"],
            "after_ms": after["median_ms"], "queries": after["queries"]}  # fmt: skip


def _free_one_gpu():
    """Another process released a whole GPU: room for two of the queue's requests (50 units each)."""
    gpu = Accelerator.objects.filter(allocated_compute_units=100, slices__isnull=True).order_by("id").first()
    Accelerator.objects.filter(id=gpu.id).update(allocated_compute_units=0)


def overview():
    staff = get_user_model().objects.create_user(f"bench-staff-{uuid.uuid4().hex[:6]}", is_staff=True)
    client = Client()
    client.force_login(staff)
    client.get("/console/")
    times, queries = [], 0
    for _ in range(5):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get("/console/")
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
        queries = len(captured)
    return {
        "gpus": Accelerator.objects.count(),
        "allocations": Allocation.objects.count(),
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "queries": queries,
    }


def console_views():
    """The views issue 14 added, server side, over the same fleet and allocations as the overview: the fleet's heatmap (10,000
    GPUs; the browser draws its cells in ~55 ms more, tests/e2e/test_console.py), the queue page, trends over 7 days."""
    staff = get_user_model().objects.create_user(f"bench-views-{uuid.uuid4().hex[:6]}", is_staff=True)
    client = Client()
    client.force_login(staff)
    figures = {}
    for name, path in {"heatmap": "/console/heatmap/", "queue": "/console/queue/", "trends": "/console/trends/?days=7"}.items():
        client.get(path)
        figures[f"{name}_ms"], figures[f"{name}_queries"] = _ms(lambda path=path: client.get(path))
    figures["heatmap_bytes"] = len(client.get("/console/heatmap/").content)
    return figures


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    began = timezone.now() - timedelta(hours=1)
    results = {"placement": placement(), "queue": queue_curve()}
    running_allocations(min(count, 50_000), began)  # the overview's target is for 50,000 allocations
    results["overview"] = overview()
    results["console_views"] = console_views()
    running_allocations(count - min(count, 50_000), began)
    results["metering"] = metering(began)
    results["ledger"] = ledger()
    results["sampling"] = sampling()
    results["long_lists"] = long_lists()
    UsageRecord.objects.all().delete()
    print(json.dumps(results))


main()
