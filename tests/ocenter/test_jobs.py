"""The embedded default's in-process periodic jobs, driven by the ASGI lifespan."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from ocenter.jobs import EmbeddedJobs, LifespanJobs
from pools.models import Pool
from tests.agents import a100_nodes
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_jobs_run_their_task_every_period(agents):
    pool = PoolFactory(agent=agents("bj", [a100_nodes(1, gpus=2)]))
    jobs = EmbeddedJobs({"sync": {"task": "pools.tasks.sync_pools", "schedule": 0.2}})
    jobs.start()
    try:
        syncs = set()
        deadline = time.monotonic() + 10
        while len(syncs) < 3 and time.monotonic() < deadline:
            pool.refresh_from_db()
            if pool.last_sync_at:
                syncs.add(pool.last_sync_at)
            time.sleep(0.05)
    finally:
        jobs.stop()
    assert len(syncs) >= 3
    assert pool.status == Pool.Status.HEALTHY


@pytest.mark.asyncio
async def test_lifespan_starts_and_stops_the_jobs(agents, settings):
    settings.CELERY_BEAT_SCHEDULE = {"sync": {"task": "pools.tasks.sync_pools", "schedule": 0.2}}
    pool = await sync_to_async(PoolFactory)(agent=await sync_to_async(agents)("bj", [a100_nodes(1, gpus=2)]))
    inbox, outbox = asyncio.Queue(), asyncio.Queue()
    lifespan = LifespanJobs()
    task = asyncio.ensure_future(lifespan({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 5))["type"] == "lifespan.startup.complete"
    for _ in range(100):
        await sync_to_async(pool.refresh_from_db)()
        if pool.status == Pool.Status.HEALTHY:
            break
        await asyncio.sleep(0.05)
    assert pool.status == Pool.Status.HEALTHY
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(outbox.get(), 15))["type"] == "lifespan.shutdown.complete"
    await asyncio.wait_for(task, 5)
    assert not any(thread.is_alive() for thread in lifespan.jobs._threads)
    await sync_to_async(connections.close_all)()
