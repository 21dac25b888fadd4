"""
Every periodic job, in one table. Celery beat reads it in production;
``ocenter.jobs`` runs the same table in-process in the embedded default.

Each entry expires after one period, so a backlog after an outage runs once,
not once per missed tick.
"""

from django.conf import settings


def beat_schedule() -> dict:
    sync = settings.OCENTER_POOL_SYNC_SECONDS
    return {
        "sync-pools": {
            "task": "pools.tasks.sync_pools",
            "schedule": float(sync),
            "options": {"expires": float(sync)},
        },
    }
