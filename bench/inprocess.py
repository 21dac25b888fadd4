"""In-process figures: placement over 10,000 GPUs, one metering run over 100,000 running allocations,
the console overview with 10,000 GPUs and 100,000 allocations. Prints JSON.

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
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models import UsageRecord  # noqa: E402
from billing.services import usage_meter  # noqa: E402
from pools.models import Accelerator, Allocation, AllocationEvent, Slice  # noqa: E402
from pools.placement import Ask, GpuState, place  # noqa: E402
from tenants.models import Tenant  # noqa: E402


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def placement(iterations=2000):
    rng = random.Random(1)
    gpus = [GpuState(i, f"pool-{i % 3}", "bench", i // 8, "NVIDIA", "A100", 81920, rng.choice([0, 25, 50, 75, 100]),
                     rng.choice([0, 20480, 40960])) for i in range(10_000)]
    sizes = [(10, 4096), (25, 16384), (50, 40960), (100, 81920)]
    times = []
    for _ in range(iterations):
        units, mib = rng.choice(sizes)
        ask = Ask(count=rng.choice([1, 1, 1, 2, 4]), compute_units=units, memory_mib=mib, policy=rng.choice(["binpack", "spread"]))
        started = time.perf_counter()
        place(ask, gpus)
        times.append((time.perf_counter() - started) * 1000)
    return {"gpus": len(gpus), "iterations": iterations, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99)}


def metering(count):
    tenant = Tenant.objects.order_by("slug").first()
    project = tenant.projects.first()
    gpus = list(Accelerator.objects.filter(gone_at=None).values_list("id", "pool_id"))
    began = timezone.now() - timedelta(hours=1)
    allocations = [Allocation(id=uuid.uuid4(), tenant=tenant, project=project, compute_units=10, memory_mib=1024,
                              state=Allocation.State.RUNNING, started_at=began) for _ in range(count)]
    started = time.perf_counter()
    Allocation.objects.bulk_create(allocations, batch_size=5000)
    Slice.objects.bulk_create([Slice(allocation=a, accelerator_id=gpus[i % len(gpus)][0], pool_id=gpus[i % len(gpus)][1], index=0,
                                     compute_units=10, memory_mib=1024, started_at=began)
                               for i, a in enumerate(allocations)], batch_size=5000)
    AllocationEvent.objects.bulk_create([AllocationEvent(allocation=a, from_state="claiming", to_state="running", actor_label="bench")
                                         for a in allocations], batch_size=5000)
    AllocationEvent.objects.filter(actor_label="bench").update(at=began)
    setup = time.perf_counter() - started
    runs = []
    for minute in (1, 2, 3):
        started = time.perf_counter()
        written = usage_meter(now=began + timedelta(minutes=60 + minute))
        runs.append({"seconds": round(time.perf_counter() - started, 2), "records": written})
    return {"running_allocations": count, "setup_seconds": round(setup, 1), "runs": runs,
            "median_seconds": statistics.median(r["seconds"] for r in runs)}


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
    return {"gpus": Accelerator.objects.count(), "allocations": Allocation.objects.count(),
            "median_ms": statistics.median(times), "max_ms": max(times), "queries": queries}


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    results = {"placement": placement(), "metering": metering(count), "overview": overview()}
    UsageRecord.objects.all().delete()
    print(json.dumps(results))


main()
