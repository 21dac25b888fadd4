"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task

from pools.models import Pool
from pools.services.allocations import leases_expire, queue_drain
from pools.services.reconcile import pool_reconcile
from pools.services.sync import pool_sync, pools_sync_all


@shared_task(ignore_result=False)
def sync_pools() -> dict:
    """Sync every pool's health and inventory (periodic; see ocenter.beat)."""
    return pools_sync_all()


@shared_task
def sync_pool(pool_id: str) -> str:
    """Sync one pool, e.g. right after it was registered."""
    return pool_sync(pool_id=pool_id).status


@shared_task
def drain_queue() -> int:
    """Start queued requests that now fit (periodic, and whenever room frees)."""
    return queue_drain()


@shared_task
def expire_leases() -> int:
    return leases_expire()


@shared_task
def reconcile_pool(pool_id: str) -> dict:
    return pool_reconcile(pool_id=pool_id)


@shared_task
def reconcile_pools() -> dict:
    """Reconcile every reachable pool with its agent (periodic)."""
    live = Pool.objects.filter(status__in=(Pool.Status.HEALTHY, Pool.Status.DEGRADED)).values_list("id", flat=True)
    return {str(pool_id): pool_reconcile(pool_id=pool_id) for pool_id in live}
