"""Reads of pools and their hardware, shaped for pages and the API."""

from collections import defaultdict

from django.db.models import Count, Prefetch, Sum

from pools.models import Accelerator, Node, Pool


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
