"""Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task

from pools.services.sync import pool_sync, pools_sync_all


@shared_task(ignore_result=False)
def sync_pools() -> dict:
    """Sync every pool's health and inventory (periodic; see ocenter.beat)."""
    return pools_sync_all()


@shared_task
def sync_pool(pool_id: str) -> str:
    """Sync one pool, e.g. right after it was registered."""
    return pool_sync(pool_id=pool_id).status
