"""
Every periodic job, in one table. Settings hand it to Celery beat in
production; ``ocenter.jobs`` runs the same table in-process in the embedded
default.

Each entry expires after one period, so a backlog after an outage runs once,
not once per missed tick.
"""


def beat_schedule(*, pool_sync_seconds: int) -> dict:
    return {
        "sync-pools": {
            "task": "pools.tasks.sync_pools",
            "schedule": float(pool_sync_seconds),
            "options": {"expires": float(pool_sync_seconds)},
        },
    }
