"""Celery tasks: thin wrappers that take ids and call services (imported inside each body: services enqueue these)."""

from celery import shared_task


@shared_task(ignore_result=False)
def sync_pools() -> dict:
    """Sync every pool's health and inventory (periodic; see ocenter.beat)."""
    from pools.services.sync import pools_sync_all

    return pools_sync_all()


@shared_task
def sync_pool(pool_id: str) -> str:
    """Sync one pool, e.g. right after it was registered."""
    from pools.services.sync import pool_sync

    return pool_sync(pool_id=pool_id).status


@shared_task
def drain_queue() -> int:
    """Start queued requests that now fit (periodic, and whenever room frees)."""
    from pools.services.allocations import queue_drain

    return queue_drain()


@shared_task
def expire_leases() -> int:
    """Release every running allocation whose lease has ended (periodic)."""
    from pools.services.allocations import leases_expire

    return leases_expire()


@shared_task
def reconcile_pool(pool_id: str) -> dict:
    """Reconcile one pool with its agent, e.g. when it comes back from an outage."""
    from pools.services.reconcile import pool_reconcile

    return pool_reconcile(pool_id=pool_id)


@shared_task
def reconcile_pools() -> dict:
    """Reconcile every reachable pool with its agent (periodic)."""
    from pools.models import Pool
    from pools.services.reconcile import pool_reconcile

    return {str(pool_id): pool_reconcile(pool_id=pool_id) for pool_id in Pool.objects.live().values_list("id", flat=True)}


@shared_task
def prune_series() -> dict:
    """Roll minutes up into hours and drop what is older than the series keep (periodic)."""
    from django.utils import timezone

    from pools.services.usage import series_prune

    return series_prune(now=timezone.now())


@shared_task
def check_idle() -> dict:
    """Flag idle work, clear what works again, act on what stayed idle past its grace (periodic)."""
    from pools.services.idle import allocations_idle_check

    return allocations_idle_check()
