"""Mirroring a real agent's health and inventory into oCenter."""

import pytest
from django.utils import timezone

from ocenter.models import AuditEntry
from pools.models import Accelerator, Node, Pool
from pools.services.sync import pool_sync, pools_sync_all
from tests.agents import a100_nodes
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db


def _present(pool):
    return Accelerator.objects.filter(pool=pool, gone_at=None)


def test_first_sync_mirrors_nodes_and_gpus(agents):
    agent = agents("bj", [a100_nodes(4, gpus=8)])
    pool = PoolFactory(agent=agent)
    pool = pool_sync(pool_id=pool.id)
    assert pool.status == Pool.Status.HEALTHY
    assert pool.last_seen_at is not None and pool.backend == "simulated"
    assert _present(pool).count() == 32
    assert Node.objects.filter(pool=pool, gone_at=None).count() == 4
    inventory = agent.client().get("/v1/inventory").json()
    assert set(_present(pool).values_list("uuid", flat=True)) == {g["uuid"] for n in inventory["nodes"] for g in n["accelerators"]}
    assert pool.inventory_generation == inventory["generation"]
    assert AuditEntry.objects.filter(action="pool.inventory", object_id=str(pool.id), changes__added=32).exists()


def test_gpus_that_disappear_are_marked_gone_and_come_back(agents):
    agent = agents("bj", [a100_nodes(2, gpus=4)])
    pool = PoolFactory(agent=agent)
    pool_sync(pool_id=pool.id)
    ids_before = set(Accelerator.objects.filter(pool=pool).values_list("id", flat=True))

    agent.set_fleet([a100_nodes(1, gpus=4)])
    agent.restart()
    pool_sync(pool_id=pool.id)
    assert _present(pool).count() == 4
    gone = Accelerator.objects.filter(pool=pool).exclude(gone_at=None)
    assert gone.count() == 4 and set(gone.values_list("node__name", flat=True)) == {"n02"}
    assert Node.objects.get(pool=pool, name="n02").gone_at is not None

    agent.set_fleet([a100_nodes(2, gpus=4)])
    agent.restart()
    pool_sync(pool_id=pool.id)
    assert _present(pool).count() == 8
    # The same rows came back: nothing was deleted and re-created.
    assert set(Accelerator.objects.filter(pool=pool).values_list("id", flat=True)) == ids_before
    assert Node.objects.get(pool=pool, name="n02").gone_at is None


def test_a_new_gpu_model_appears(agents):
    agent = agents("mixed", [a100_nodes(1, gpus=2)])
    pool = PoolFactory(agent=agent)
    pool_sync(pool_id=pool.id)
    h100 = {"name": "h{n:02d}", "count": 1, "gpus": 2, "vendor": "NVIDIA", "model": "H100-SXM5-80GB", "memory_mib": 81559}
    agent.set_fleet([a100_nodes(1, gpus=2), h100])
    agent.restart()
    pool_sync(pool_id=pool.id)
    assert sorted(_present(pool).values_list("model", flat=True)) == ["A100-SXM4-80GB"] * 2 + ["H100-SXM5-80GB"] * 2


def test_agent_down_is_unreachable_keeps_inventory_and_recovers(agents):
    agent = agents("bj", [a100_nodes(1, gpus=4)])
    pool = PoolFactory(agent=agent)
    seen = pool_sync(pool_id=pool.id).last_seen_at

    agent.stop()
    pool = pool_sync(pool_id=pool.id)
    assert pool.status == Pool.Status.UNREACHABLE
    assert "cannot reach" in pool.status_detail
    assert pool.last_seen_at == seen  # oCenter's clock: it has not heard from it since
    assert _present(pool).count() == 4  # an outage is not a disappearance
    assert AuditEntry.objects.filter(action="pool.status", changes__status=["healthy", "unreachable"]).exists()

    agent.start()
    pool = pool_sync(pool_id=pool.id)
    assert pool.status == Pool.Status.HEALTHY and pool.last_seen_at > seen and pool.status_detail == ""


def test_unhealthy_gpu_makes_the_pool_degraded(agents):
    agent = agents("bj", [a100_nodes(1, gpus=4)])
    pool = PoolFactory(agent=agent)
    pool_sync(pool_id=pool.id)
    sick = _present(pool).first()
    agent.client().put("/v1/faults", json={"unhealthy_gpus": [sick.uuid]})
    pool = pool_sync(pool_id=pool.id)
    assert pool.status == Pool.Status.DEGRADED
    assert "1 of 4 GPUs unhealthy" in pool.status_detail
    sick.refresh_from_db()
    assert sick.health == Accelerator.Health.UNHEALTHY


def test_a_rejected_token_is_reported(agents):
    agent = agents("bj", [a100_nodes(1, gpus=1)])
    pool = PoolFactory(agent=None, agent_url=agent.url)
    pool = pool_sync(pool_id=pool.id)
    assert pool.status == Pool.Status.DEGRADED
    assert "401" in pool.status_detail and "bearer token" in pool.status_detail
    assert not Accelerator.objects.filter(pool=pool).exists()


def test_unchanged_generation_skips_the_inventory_write(agents, django_assert_max_num_queries):
    agent = agents("bj", [a100_nodes(2, gpus=8)])
    pool = PoolFactory(agent=agent)
    pool_sync(pool_id=pool.id)
    # Read pool, lock it, count unhealthy GPUs, save, savepoints: no per-GPU queries.
    with django_assert_max_num_queries(8):
        pool_sync(pool_id=pool.id)


@pytest.mark.django_db(transaction=True)
def test_a_slow_agent_delays_no_other_pool(agents):
    slow_agent = agents("slow", [a100_nodes(1, gpus=1)])
    fast_agent = agents("fast", [a100_nodes(1, gpus=1)])
    slow = PoolFactory(agent=slow_agent)
    fast = PoolFactory(agent=fast_agent)
    dead = PoolFactory(agent_url="http://127.0.0.1:9")  # nothing listens on the discard port
    slow_agent.client().put("/v1/faults", json={"latency_ms": 1200})

    started = timezone.now()
    result = pools_sync_all()
    assert result == {str(slow.id): "healthy", str(fast.id): "healthy", str(dead.id): "unreachable"}
    fast.refresh_from_db()
    slow.refresh_from_db()
    dead.refresh_from_db()
    assert (slow.last_sync_at - started).total_seconds() >= 1.2
    # The others were done while the slow agent was still thinking.
    assert (fast.last_sync_at - started).total_seconds() < 1.0
    assert (dead.last_sync_at - started).total_seconds() < 1.0
