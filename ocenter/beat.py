"""
Every periodic job, in one table. Settings hand it to Celery beat in
production; ``ocenter.jobs`` runs the same table in-process in the embedded
default.

Each entry expires after one period, so a backlog after an outage runs once,
not once per missed tick.
"""


def _every(seconds: float, task: str) -> dict:
    return {"task": task, "schedule": float(seconds), "options": {"expires": float(seconds)}}


def beat_schedule(*, pool_sync_seconds: int, meter_seconds: int = 60) -> dict:
    return {
        "sync-pools": _every(pool_sync_seconds, "pools.tasks.sync_pools"),
        "drain-queue": _every(5, "pools.tasks.drain_queue"),
        "expire-leases": _every(10, "pools.tasks.expire_leases"),
        "reconcile-pools": _every(60, "pools.tasks.reconcile_pools"),
        "meter-usage": _every(meter_seconds, "billing.tasks.meter_usage"),
        "prune-series": _every(3600, "pools.tasks.prune_series"),
        "check-idle": _every(60, "pools.tasks.check_idle"),
        "deliver-webhooks": _every(10, "ocenter.tasks.deliver_webhooks"),
    }
