"""What the GPUs do flows back: the pool sync samples a real agent's metrics into compact series; outside use is taken."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from pools import series
from pools.models import Accelerator, Allocation, AllocationSeries, GpuSeries, Pool
from pools.selectors import allocation_usage, latest_usage, pool_utilization
from pools.services.allocations import allocation_request
from pools.services.sync import pool_sync
from pools.services.usage import pool_sample, series_prune

pytestmark = pytest.mark.django_db
State = Allocation.State


def _request(acme, labels=None, **kwargs):
    tenant, project, user, _ = acme
    spec = {"count": 1, "compute_units": 50, "memory_mib": 8192, "labels": labels or {}, **kwargs}
    return allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]


def _due(pool):
    Pool.objects.filter(id=pool.id).update(sampled_at=None)


def test_a_sync_turns_the_agents_metrics_into_points_for_gpus_and_allocations(fleet):
    acme = fleet.tenant("acme")
    busy = _request(acme, {"ocenter.io/simulate": "busy"})
    idle = _request(acme, {"ocenter.io/simulate": "idle"})
    _due(fleet.pool)
    pool_sync(pool_id=fleet.pool.id)
    now = timezone.now()
    since = now - timedelta(minutes=5)
    (busy_point,) = allocation_usage(busy, since=since, now=now, resolution=series.MINUTE)
    (idle_point,) = allocation_usage(idle, since=since, now=now, resolution=series.MINUTE)
    assert busy_point["utilization"] > 0 and busy_point["busiest"] > 0 and busy_point["processes"] == 1 and busy_point["memory_mib"] > 0
    assert (idle_point["utilization"], idle_point["busiest"], idle_point["processes"], idle_point["memory_mib"]) == (0, 0, 0, 0)
    (pool_point,) = pool_utilization(fleet.pool, since=since, now=now, resolution=series.MINUTE)
    assert pool_point["gpus"] == 2 and pool_point["memory_mib"] > 0
    assert latest_usage([busy.id, idle.id])[idle.id]["processes"] == 0
    # Within the minute, a second sync adds no point.
    rows = AllocationSeries.objects.count()
    pool_sync(pool_id=fleet.pool.id)
    assert AllocationSeries.objects.count() == rows and len(allocation_usage(busy, since=since, now=timezone.now(),
                                                                             resolution=series.MINUTE)) == 1  # fmt: skip


def test_memory_outside_processes_hold_is_taken_for_placement(fleet):
    acme = fleet.tenant("acme")
    first, second = Accelerator.objects.filter(pool=fleet.pool).order_by("index")
    fleet.agent.client().put("/v1/faults", json={"outside_use_mib": {first.uuid: 78_000}})
    _due(fleet.pool)
    pool_sync(pool_id=fleet.pool.id)
    first.refresh_from_db()
    assert first.outside_memory_mib == 78_000
    # Binpack would put both on the first GPU; only 3,920 MiB of it is free, so the 8 GiB slices go to the other.
    placed = [_request(acme) for _ in range(2)]
    assert [a.slices.get().accelerator_id for a in placed] == [second.id, second.id]
    assert {a.state for a in placed} == {State.RUNNING}


def _metrics(pool, utilization, claims=()):
    return {"accelerators": [{"uuid": g.uuid, "utilization_percent": utilization, "memory_used_mib": 1000 + utilization}
                             for g in Accelerator.objects.filter(pool=pool)], "allocations": list(claims)}  # fmt: skip


def test_minutes_roll_up_into_hours_and_old_points_are_pruned(fleet):
    pool = fleet.pool
    GpuSeries.objects.all().delete()  # the fixture's own sync sampled the present
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    for minute in range(0, 60, 10):  # six points in the 10:00 hour: 0, 10, …, 50 percent
        pool_sample(pool=pool, metrics=_metrics(pool, minute), now=start + timedelta(minutes=minute))
    pool_sample(pool=pool, metrics=_metrics(pool, 90), now=start + timedelta(hours=1, minutes=5))  # the 11:00 hour, unfinished
    assert GpuSeries.objects.filter(resolution=series.MINUTE).count() == 4  # 2 GPUs × 2 hours

    series_prune(now=start + timedelta(hours=1, minutes=30))
    (hour_point, *_) = pool_utilization(pool, since=start, now=start + timedelta(hours=2), resolution=series.HOUR)
    assert hour_point["at"] == start and hour_point["utilization"] == 25 and hour_point["memory_mib"] == 2 * 1025
    assert GpuSeries.objects.filter(resolution=series.MINUTE, rolled_up=True).count() == 2  # the 11:00 hour waits
    series_prune(now=start + timedelta(hours=1, minutes=31))  # nothing rolls up twice
    assert pool_utilization(pool, since=start, now=start + timedelta(hours=2), resolution=series.HOUR)[0]["utilization"] == 25

    series_prune(now=start + timedelta(days=7, hours=2))  # minutes are kept 7 days
    assert GpuSeries.objects.filter(resolution=series.MINUTE).count() == 0
    hours = pool_utilization(pool, since=start, now=start + timedelta(hours=2), resolution=series.HOUR)
    assert [(p["at"], p["utilization"]) for p in hours] == [(start, 25), (start + timedelta(hours=1), 90)]  # rolled up before going
    assert GpuSeries.objects.filter(resolution=series.HOUR).count() == 2  # a row holds a GPU's day
    series_prune(now=start + timedelta(days=91))  # hours, 90
    assert GpuSeries.objects.count() == 0


def test_a_row_is_a_few_hundred_bytes_whatever_the_hour(fleet):
    pool_sample(pool=fleet.pool, metrics=_metrics(fleet.pool, 40), now=timezone.now())
    row = GpuSeries.objects.first()
    assert len(bytes(row.utilization)) == 60 and len(bytes(row.memory_mib)) == 240


def test_the_api_serves_an_allocations_usage_and_a_pools_utilization_to_those_who_may_see_them(fleet):
    acme, globex = fleet.tenant("acme"), fleet.tenant("globex")
    busy = _request(acme, {"ocenter.io/simulate": "busy"})
    _due(fleet.pool)
    pool_sync(pool_id=fleet.pool.id)
    client = acme[3]
    usage = client.get(f"/api/v1/allocations/{busy.id}/usage")
    assert usage.status_code == 200 and usage.json()["resolution"] == "minute"
    (point,) = usage.json()["points"]
    assert point["utilization"] > 0 and point["processes"] == 1
    assert globex[3].get(f"/api/v1/allocations/{busy.id}/usage").status_code == 404
    assert client.get(f"/api/v1/allocations/{busy.id}/usage?since=yesterday").status_code == 400
    long_ago = client.get(f"/api/v1/allocations/{busy.id}/usage?since=2026-09-01T00:00:00Z").json()
    assert long_ago["resolution"] == "hour" and long_ago["points"] == []  # nothing is rolled up yet
    pool = client.get(f"/api/v1/pools/{fleet.pool.id}/utilization").json()
    assert pool["points"][-1]["gpus"] == 2


def test_the_pool_page_shows_outside_use_and_what_each_gpu_enforces(client, staff, fleet):
    first = Accelerator.objects.filter(pool=fleet.pool).order_by("index").first()
    fleet.agent.client().put("/v1/faults", json={"outside_use_mib": {first.uuid: 12_000}})
    _due(fleet.pool)
    pool_sync(pool_id=fleet.pool.id)
    client.force_login(staff)
    page = client.get(f"/console/pools/{fleet.pool.id}/").content.decode()
    assert 'data-outside="12000"' in page and "simulated" in page


def test_a_gpu_with_no_utilization_source_gets_no_point_but_its_outside_use_counts(fleet):
    first, second = Accelerator.objects.filter(pool=fleet.pool).order_by("index")
    metrics = {"accelerators": [
        # A cluster without HAMi's exporter: utilization unknown, outside use read from the pods.
        {"uuid": first.uuid, "utilization_percent": None, "memory_used_mib": 3000, "outside_memory_mib": 3000},
        {"uuid": second.uuid, "utilization_percent": 40.0, "memory_used_mib": 0, "outside_memory_mib": 0},
    ], "allocations": []}  # fmt: skip
    GpuSeries.objects.all().delete()  # the fixture's first sync sampled both
    pool_sample(pool=fleet.pool, metrics=metrics, now=timezone.now())
    first.refresh_from_db()
    assert first.outside_memory_mib == 3000
    assert set(GpuSeries.objects.values_list("accelerator_id", flat=True)) == {second.id}
