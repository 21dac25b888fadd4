"""The periodic sync as Celery runs it: the beat table's entry, consumed by a real worker over Redis."""

import time

import pytest

from ocenter.celery import app
from pools.models import Pool
from tests.agents import a100_nodes
from tests.factories import PoolFactory


def test_beat_table_syncs_pools_every_period():
    from ocenter.beat import beat_schedule

    entry = beat_schedule(pool_sync_seconds=7)["sync-pools"]
    assert entry["task"] == "pools.tasks.sync_pools"
    assert entry["schedule"] == 7.0 and entry["options"]["expires"] == 7.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
    assert app.conf.beat_schedule["sync-pools"]["task"] == entry["task"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_periodic_sync_from_redis(agents):
    from celery.contrib.testing.worker import start_worker

    agent = agents("bj", [a100_nodes(2, gpus=4)])
    down = PoolFactory(agent_url="http://127.0.0.1:9")
    pool = PoolFactory(agent=agent)
    entry = app.conf.beat_schedule["sync-pools"]
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
            app.send_task(entry["task"], **entry["options"])  # what beat sends
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pool.refresh_from_db()
                if pool.status != Pool.Status.NEW:
                    break
                time.sleep(0.2)
    finally:
        app.conf.task_always_eager = True
    assert pool.status == Pool.Status.HEALTHY and pool.accelerators.count() == 8
    down.refresh_from_db()
    assert down.status == Pool.Status.UNREACHABLE
