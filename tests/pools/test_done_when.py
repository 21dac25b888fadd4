"""The issue's 'done when', against the three demo pools as real agent processes."""

import shutil
import time
from pathlib import Path

import pytest

from pools.models import Allocation, Pool, Slice
from pools.services.allocations import allocation_release, allocation_request, queue_drain
from pools.services.reconcile import pool_reconcile
from pools.services.sync import pools_sync_all
from tenants.models import Project
from tenants.services import quota_set, tenant_create
from tests.agents import AgentProcess
from tests.factories import PoolFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "pools" / "agent" / "examples"
State = Allocation.State


@pytest.fixture
def demo_pools(tmp_path, db):
    agents = {}
    for name in ("bj-a100", "sh-h100", "edge-910b"):
        agent = AgentProcess(tmp_path, name, [], token=f"{name}-token-0123456789")
        shutil.copy(EXAMPLES / f"{name}.toml", agent.config)
        agents[name] = agent.start()
        PoolFactory(name=name, agent=agent)
    pools_sync_all()
    yield agents
    for agent in agents.values():
        agent.stop()


def _tenant(slug, guarantee_units, limit_units):
    tenant = tenant_create(actor=None, slug=slug, name=slug)
    project = Project.objects.create(tenant=tenant, slug="main", name="Main")
    quota_set(
        actor=None,
        tenant=tenant,
        project=None,
        guarantee_compute_units=guarantee_units,
        limit_compute_units=limit_units,
        guarantee_memory_mib=10**8,
        limit_memory_mib=10**8,
        guarantee_slices=1000,
        limit_slices=1000,
    )
    return tenant, project


def _in_agreement(agents) -> bool:
    for name, agent in agents.items():
        held = {c["id"] for c in agent.client().get("/v1/allocations").json()["allocations"]}
        active = {str(i) for i in Slice.objects.filter(pool__name=name, active=True).values_list("id", flat=True)}
        if held != active:
            return False
    return True


@pytest.mark.django_db(transaction=True)
def test_fill_preempt_drain_and_survive_an_agent_restart(demo_pools, staff):
    acme, acme_project = _tenant("acme", 0, 10_000)
    globex, globex_project = _tenant("globex", 400, 800)
    offline = dict(
        actor=staff,
        tenant=acme,
        project=acme_project,
        count=1,
        compute_units=100,
        memory_mib=40_000,
        pool_name="sh-h100",
        priority="offline",
        requeue_on_preempt=True,
    )

    # acme fills sh-h100 (16 GPUs) with offline work, and more waits.
    filled = [allocation_request(**offline)[0] for _ in range(16)]
    assert {a.state for a in filled} == {State.RUNNING}
    waiting = [allocation_request(**offline)[0] for _ in range(3)]
    assert {a.state for a in waiting} == {State.QUEUED}

    # globex asks for one whole H100, realtime, within its guarantee.
    started = time.monotonic()
    realtime, _ = allocation_request(
        actor=staff,
        tenant=globex,
        project=globex_project,
        count=1,
        compute_units=100,
        memory_mib=40_000,
        pool_name="sh-h100",
        priority="realtime",
    )
    assert realtime.state == State.RUNNING and time.monotonic() - started < 5
    preempted = Allocation.objects.filter(state=State.PREEMPTED)
    assert preempted.count() == 1 and preempted.get().preempted_by_id == realtime.id  # the fewest: one slice
    assert Allocation.objects.filter(requeued_from=preempted.get(), state=State.QUEUED).exists()

    # The sh-h100 agent dies in the middle of it, and comes back.
    demo_pools["sh-h100"].kill()
    for allocation in filled[:2]:
        allocation_release(actor=staff, allocation=Allocation.objects.get(id=allocation.id))
    assert Allocation.objects.filter(id__in=[a.id for a in filled[:2]], state=State.RELEASING).count() == 2
    pools_sync_all()
    assert Pool.objects.get(name="sh-h100").status == Pool.Status.UNREACHABLE
    demo_pools["sh-h100"].start()
    pools_sync_all()  # back: the pool is reconciled on recovery
    for pool in Pool.objects.all():
        pool_reconcile(pool_id=pool.id)
    assert _in_agreement(demo_pools)
    assert Allocation.objects.filter(state=State.RELEASING).count() == 0

    # Two GPUs freed: the queue drains, oldest waiting first within acme.
    queue_drain()
    running_now = Allocation.objects.filter(tenant=acme, state=State.RUNNING).count()
    assert running_now == 16 - 1 - 2 + 2
    assert Allocation.objects.filter(state=State.QUEUED).count() == 3 + 1 - 2
    assert _in_agreement(demo_pools)
