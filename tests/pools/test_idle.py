"""Idle GPUs reclaimed: flagged with the money spent while idle, owners told, then released, moved to offline or warned.

The agents are real (simulated backend: a claim labelled idle shows no work); the minutes are the test's own,
passed as ``now`` to the sampling and the check, so an hour of idleness takes no hour.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Notification
from billing.services import price_set
from ocenter.models import AuditEntry
from pools.models import Allocation, IdlePolicy
from pools.services.allocations import allocation_request
from pools.services.idle import allocations_idle_check, idle_policy_set
from pools.services.usage import pool_sample

pytestmark = pytest.mark.django_db
State = Allocation.State
IDLE, BUSY = {"ocenter.io/simulate": "idle"}, {"ocenter.io/simulate": "busy"}


def _request(acme, labels, priority="offline", **kwargs):
    tenant, project, user, _ = acme
    spec = {"count": 1, "compute_units": 25, "memory_mib": 4096, "priority": priority, "labels": labels, **kwargs}
    return allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]


class Clock:
    """Minutes passing: each tick samples the agent's real metrics at the test's time, then runs the idle check."""

    def __init__(self, fleet, start):
        self.fleet, self.now = fleet, start

    def run(self, minutes: int) -> dict:
        counts = {}
        for _ in range(minutes):
            self.now += timedelta(minutes=1)
            pool_sample(pool=self.fleet.pool, metrics=self.fleet.agent.client().get("/v1/metrics").json(), now=self.now)
            for key, value in allocations_idle_check(now=self.now).items():
                counts[key] = counts.get(key, 0) + value
        return counts


@pytest.fixture
def clock(fleet):
    return Clock(fleet, timezone.now())


def _started_earlier(*allocations):
    Allocation.objects.filter(id__in=[a.id for a in allocations]).update(started_at=timezone.now() - timedelta(hours=3))


def _policy(**fields):
    return idle_policy_set(actor=None, **{"threshold_percent": 5, "idle_minutes": 10, "grace_minutes": 15, "action": "release", **fields})


def test_idle_offline_work_is_flagged_then_released_after_the_grace(fleet, clock):
    price_set(actor=None, compute_gpu_hour=Decimal("40.00"), effective_from=timezone.now() - timedelta(days=1))
    _policy()
    acme = fleet.tenant("acme")
    idle, busy = _request(acme, IDLE), _request(acme, BUSY)
    _started_earlier(idle, busy)

    assert clock.run(9) == {"flagged": 0, "working_again": 0, "acted": 0}  # not yet the policy's 10 minutes
    assert clock.run(1)["flagged"] == 1
    idle.refresh_from_db()
    busy.refresh_from_db()
    assert idle.idle_flagged_at == clock.now and idle.idle_since is not None and busy.idle_flagged_at is None
    (notice,) = Notification.objects.filter(kind="idle")
    assert f"allocation {str(idle.id)[:8]} has been idle since" in notice.message and "released in 15 minutes" in notice.message
    assert "spent while idle" in notice.message  # a quarter GPU at 40.00 an hour, for the minutes it sat idle
    assert AuditEntry.objects.filter(action="allocation.idle", object_id=str(idle.id)).exists()

    assert clock.run(14)["acted"] == 0
    assert clock.run(1)["acted"] == 1
    idle.refresh_from_db()
    assert idle.state == State.RELEASED and "idle since" in idle.reason and idle.idle_acted_at is not None
    assert [c["id"] for c in fleet.claims()] == [str(busy.slices.get().id)]
    busy.refresh_from_db()
    assert busy.state == State.RUNNING


def test_interruptible_work_is_moved_to_offline_when_the_policy_says_so(fleet, clock):
    _policy(action="demote", grace_minutes=0)
    acme = fleet.tenant("acme")
    idle = _request(acme, IDLE, priority="interruptible")
    _started_earlier(idle)
    counts = clock.run(11)
    assert counts["flagged"] == 1 and counts["acted"] == 1
    idle.refresh_from_db()
    assert (idle.state, idle.priority) == (State.RUNNING, "offline")
    assert idle.events.filter(from_state="running", to_state="running", reason__startswith="moved to offline").exists()
    assert AuditEntry.objects.filter(action="allocation.demote", object_id=str(idle.id)).exists()


def test_realtime_work_is_only_warned(fleet, clock):
    _policy(grace_minutes=0)
    acme = fleet.tenant("acme")
    idle = _request(acme, IDLE, priority="realtime")
    _started_earlier(idle)
    assert clock.run(11)["acted"] == 1
    idle.refresh_from_db()
    assert idle.state == State.RUNNING and idle.idle_acted_at is not None
    messages = list(Notification.objects.filter(kind="idle").values_list("message", flat=True))
    assert any("realtime work, so it stays" in m for m in messages) and any("keeps its GPUs" in m for m in messages)
    assert clock.run(5)["acted"] == 0  # warned once


def test_work_that_starts_again_is_no_longer_idle(fleet, clock):
    _policy()
    acme = fleet.tenant("acme")
    sleeper = _request(acme, IDLE)
    _started_earlier(sleeper)
    assert clock.run(10)["flagged"] == 1
    # Its work starts: on the simulated agent, the same claim made again with the label that makes it busy.
    from pools.agent_client import AgentClient

    agent = AgentClient.for_pool(fleet.pool)
    s = sleeper.slices.get()
    agent.release(s.id)
    agent.claim(s.id, gpu_uuid=s.accelerator.uuid, compute_units=s.compute_units, memory_mib=s.memory_mib, labels=BUSY)
    assert clock.run(1)["working_again"] == 1
    sleeper.refresh_from_db()
    assert (sleeper.idle_since, sleeper.idle_flagged_at) == (None, None)
    assert AuditEntry.objects.filter(action="allocation.active", object_id=str(sleeper.id)).exists()


def test_a_tenants_own_policy_wins_over_the_platforms(fleet, clock):
    _policy(idle_minutes=10)
    acme, globex = fleet.tenant("acme"), fleet.tenant("globex")
    idle_policy_set(actor=None, tenant=globex[0], threshold_percent=5, idle_minutes=60, grace_minutes=15, action="notify")
    acme_idle, globex_idle = _request(acme, IDLE), _request(globex, IDLE)
    _started_earlier(acme_idle, globex_idle)
    clock.run(11)
    acme_idle.refresh_from_db()
    globex_idle.refresh_from_db()
    assert acme_idle.idle_flagged_at is not None and globex_idle.idle_flagged_at is None
    assert IdlePolicy.objects.filter(platform=True).count() == 1


def test_no_points_is_no_evidence_of_idleness_nor_of_work(fleet, clock):
    _policy()
    acme = fleet.tenant("acme")
    idle = _request(acme, IDLE)
    _started_earlier(idle)
    clock.now += timedelta(minutes=30)  # the agent did not answer: nothing was sampled
    assert allocations_idle_check(now=clock.now)["flagged"] == 0
    assert clock.run(10)["flagged"] == 1
    clock.now += timedelta(minutes=30)  # away again: a flag stays as it was, neither cleared nor acted on
    assert allocations_idle_check(now=clock.now) == {"flagged": 0, "working_again": 0, "acted": 0}
    idle.refresh_from_db()
    assert idle.idle_flagged_at is not None and idle.state == State.RUNNING
