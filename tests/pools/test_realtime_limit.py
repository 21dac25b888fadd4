"""Realtime work within its guarantee is admitted, and its tenant still holds no more than its limit."""

import threading

import pytest
from django.db import connections
from django.db.models import Sum

from ocenter.errors import Refused
from pools.models import Allocation, Slice
from pools.services.allocations import allocation_request
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)
State = Allocation.State
UNITS_1000 = dict(
    guarantee_compute_units=1000,
    limit_compute_units=1000,
    guarantee_memory_mib=10**9,
    limit_memory_mib=10**9,
    guarantee_slices=1000,
    limit_slices=1000,
)


def _held(tenant) -> int:
    return Slice.objects.filter(active=True, allocation__tenant=tenant).aggregate(units=Sum("compute_units"))["units"] or 0


def _request(acme, priority, **kwargs):
    tenant, project, user, _ = acme
    spec = {"count": 1, "compute_units": 100, "memory_mib": 1000, "priority": priority, **kwargs}
    return allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]


def test_realtime_reclaims_the_tenants_own_offline_work_to_stay_within_its_limit(agents, django_user_model):
    """The reproduction: guarantee = limit = 1,000 units, 10 offline × 100 running, then 10 realtime × 100."""
    fleet = Fleet(agents, django_user_model, nodes=3, gpus=8)  # room for all twenty: only the quota stands in the way
    acme = fleet.tenant("acme", quota=UNITS_1000)
    offline = [_request(acme, "offline") for _ in range(10)]
    assert {a.state for a in offline} == {State.RUNNING} and _held(acme[0]) == 1000

    for _ in range(10):
        realtime = _request(acme, "realtime")
        assert realtime.state == State.RUNNING, realtime.reason
        assert _held(acme[0]) <= 1000
    assert _held(acme[0]) == 1000
    assert Allocation.objects.filter(priority="realtime", state=State.RUNNING).count() == 10
    reclaimed = Allocation.objects.filter(priority="offline", state=State.PREEMPTED)
    assert reclaimed.count() == 10 and all(a.preempted_by.tenant_id == acme[0].id for a in reclaimed)
    assert len(fleet.claims()) == 10


def test_realtime_over_the_limit_with_nothing_to_reclaim_is_refused_with_the_figures(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=8)
    quota = {**UNITS_1000, "guarantee_compute_units": 300, "limit_compute_units": 300}
    acme = fleet.tenant("acme", quota=quota)
    for _ in range(2):
        assert _request(acme, "interruptible").state == State.RUNNING  # within the guarantee: not borrowed, not reclaimable
    assert _request(acme, "realtime").state == State.RUNNING
    with pytest.raises(Refused) as refused:
        _request(acme, "realtime")
    detail = refused.value.detail
    assert "limit is 300 compute units; 300 are held" in detail and "asks 100" in detail and "0 of them reclaimable" in detail
    assert _held(acme[0]) == 300 and Allocation.objects.count() == 3


def test_racing_requests_a_third_of_them_realtime_never_hold_more_than_the_limit(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=3, gpus=8)
    acme = fleet.tenant("acme", quota=UNITS_1000)
    racers = 30  # ten realtime (all within the guarantee of 1,000 units), twenty offline
    barrier = threading.Barrier(racers)
    peak = []

    def run(i):
        try:
            barrier.wait()
            _request(acme, "realtime" if i % 3 == 0 else "offline")
        except Refused:
            pass
        finally:
            peak.append(_held(acme[0]))
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert max(peak) <= 1000 and _held(acme[0]) <= 1000
    assert Allocation.objects.filter(priority="realtime", state=State.RUNNING).count() == racers // 3
