"""What pools contribute to a Prometheus scrape (ocenter/metrics.py), read from the database at scrape time."""

from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.models import Accelerator, Allocation, Pool

ACTIVE = (Allocation.State.QUEUED, Allocation.State.CLAIMING, Allocation.State.RUNNING, Allocation.State.RELEASING)
BY_KIND = ["pool", "model"]


def gauge(name: str, documentation: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


class PoolsCollector:
    """GPUs, what is handed out, the allocations in flight, the queue, idle work and pools' health: five queries a scrape."""

    def collect(self):
        yield from self._gpus()
        yield from self._allocations()
        pools = gauge("ocenter_pool_up", "1 when the pool's agent answers (healthy or degraded), else 0.", "pool", "status")
        for name, status in Pool.objects.values_list("name", "status"):
            pools.add_metric([name, status], 1 if status in (Pool.Status.HEALTHY, Pool.Status.DEGRADED) else 0)
        yield pools

    def _gpus(self):
        gpus = gauge("ocenter_gpus", "GPUs present, by pool, model and health.", "pool", "model", "health")
        figures = [
            gauge("ocenter_compute_units", "Compute units present (100 a GPU), by pool and model.", *BY_KIND),
            gauge("ocenter_allocated_compute_units", "Compute units handed out, by pool and model.", *BY_KIND),
            gauge("ocenter_memory_mib", "GPU memory present, MiB, by pool and model.", *BY_KIND),
            gauge("ocenter_allocated_memory_mib", "GPU memory handed out, MiB, by pool and model.", *BY_KIND),
        ]
        sums = {"used": Sum("allocated_compute_units"), "mib": Sum("memory_mib"), "used_mib": Sum("allocated_memory_mib")}
        totals = {}
        for row in Accelerator.objects.filter(gone_at=None).values("pool__name", "model", "health").annotate(n=Count("id"), **sums):
            gpus.add_metric([row["pool__name"], row["model"], row["health"]], row["n"])
            total = totals.setdefault((row["pool__name"], row["model"]), [0, 0, 0, 0])
            for i, value in enumerate((row["n"] * COMPUTE_UNITS_PER_GPU, row["used"], row["mib"], row["used_mib"])):
                total[i] += value or 0
        for labels, values in totals.items():
            for family, value in zip(figures, values):
                family.add_metric(labels, value)
        yield gpus
        yield from figures

    def _allocations(self):
        by_state = gauge("ocenter_allocations", "Allocations in flight (queued, claiming, running, releasing), by state, class and tenant.",
                         "state", "class", "tenant")  # fmt: skip
        idle = gauge("ocenter_idle_allocations", "Running allocations flagged idle, by tenant.", "tenant")
        flagged = Count("id", filter=Q(idle_flagged_at__isnull=False, state=Allocation.State.RUNNING))
        idle_by_tenant = {}
        in_flight = Allocation.objects.filter(state__in=ACTIVE).values("state", "priority", "tenant__slug")
        for row in in_flight.annotate(n=Count("id"), idle=flagged):
            by_state.add_metric([row["state"], row["priority"], row["tenant__slug"]], row["n"])
            idle_by_tenant[row["tenant__slug"]] = idle_by_tenant.get(row["tenant__slug"], 0) + row["idle"]
        for tenant, count in idle_by_tenant.items():
            idle.add_metric([tenant], count)
        queue = gauge("ocenter_queue_length", "Requests waiting in the queue, by class.", "class")
        oldest = gauge("ocenter_queue_oldest_wait_seconds", "How long the oldest waiting request has waited, by class.", "class")
        now = timezone.now()
        waiting = Allocation.objects.filter(state=Allocation.State.QUEUED).values("priority").order_by()
        for row in waiting.annotate(n=Count("id"), since=Min("created_at")):
            queue.add_metric([row["priority"]], row["n"])
            oldest.add_metric([row["priority"]], (now - row["since"]).total_seconds())
        yield from (by_state, idle, queue, oldest)
