"""A controlled clock for billing: allocations whose running time is written by the test, not by a real agent."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.models import Price
from pools.models import Accelerator, Allocation, AllocationEvent, Node, Pool, Slice
from tenants.models import Project
from tests.factories import TenantFactory


def at(text: str) -> datetime:
    """'2026-11-03 12:00:30' in UTC (the test settings' time zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Ledger:
    """Builds pools, tenants and allocations with hand-written histories."""

    def __init__(self):
        self.pool = Pool.objects.create(
            name="bj", region="r", agent_url="http://127.0.0.1:9", token_ciphertext="-", status=Pool.Status.HEALTHY
        )
        node = Node.objects.create(pool=self.pool, name="n1")
        self.gpus = [
            Accelerator.objects.create(pool=self.pool, node=node, uuid=f"GPU-{i}", index=i, vendor="NVIDIA", model="A100", memory_mib=81920)
            for i in range(8)
        ]
        self.projects = {}

    def project(self, tenant_slug: str, project_slug: str = "main") -> Project:
        key = (tenant_slug, project_slug)
        if key not in self.projects:
            from tenants.models import Tenant

            tenant = Tenant.objects.filter(slug=tenant_slug).first() or TenantFactory(slug=tenant_slug)
            self.projects[key] = Project.objects.create(tenant=tenant, slug=project_slug, name=project_slug)
        return self.projects[key]

    def run(self, project: Project, *stretches, units=100, mib=0, priority="offline", ended="released", gpu=0, template="") -> Allocation:
        """An allocation that ran over ``stretches`` [(start, end or None)], then ended as ``ended``."""
        allocation = Allocation.objects.create(
            tenant=project.tenant,
            project=project,
            compute_units=units,
            memory_mib=max(mib, 1),
            template=template,
            priority=priority,
            state=Allocation.State.RUNNING,
        )
        Slice.objects.create(
            allocation=allocation,
            accelerator=self.gpus[gpu],
            pool=self.pool,
            index=0,
            compute_units=units,
            memory_mib=max(mib, 1),
            started_at=at(stretches[0][0]),
            active=ended is None,
        )
        history = [("", "queued", stretches[0][0]), ("queued", "claiming", stretches[0][0])]
        state = "claiming"
        for start, end in stretches:
            history.append((state, "running", start))
            state = "running"
            if end:
                history.append(("running", "releasing", end))
                state = "releasing"
        if ended and state == "releasing":
            history.append(("releasing", ended, stretches[-1][1]))
            state = ended
        for from_state, to_state, moment in history:
            event = AllocationEvent.objects.create(allocation=allocation, from_state=from_state, to_state=to_state, actor_label="test")
            AllocationEvent.objects.filter(id=event.id).update(at=at(moment))
        Allocation.objects.filter(id=allocation.id).update(
            state=state, ended_at=at(stretches[-1][1]) if ended and stretches[-1][1] else None
        )
        allocation.refresh_from_db()
        return allocation


@pytest.fixture
def ledger(db):
    return Ledger()


def price(compute, memory="0", since="2026-01-01 00:00:00", **scope) -> Price:
    return Price.objects.create(compute_gpu_hour=Decimal(compute), memory_gib_hour=Decimal(memory), effective_from=at(since), **scope)
