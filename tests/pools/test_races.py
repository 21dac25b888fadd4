"""Requests racing for the last room on a GPU, and for the last unit of a quota, never both win."""

import threading

import pytest
from django.db import connections

from ocenter.errors import Refused
from pools.models import Accelerator, Allocation, Slice
from pools.services.allocations import allocation_request
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)
RACERS = 40


def _race(work):
    barrier = threading.Barrier(RACERS)
    outcomes = []

    def run(i):
        try:
            barrier.wait()
            outcomes.append(work(i))
        except Refused:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_racing_for_the_last_gpus_never_oversubscribes(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    tenants = [fleet.tenant(f"t{i}") for i in range(RACERS)]

    def request(i):
        tenant, project, user, _ = tenants[i]
        allocation, _ = allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=100, memory_mib=1000)
        return allocation.state

    outcomes = _race(request)
    assert outcomes.count("running") == 2 and outcomes.count("queued") == RACERS - 2
    assert sorted(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == [100, 100]
    claims = fleet.claims()
    assert len(claims) == 2 and len({c["gpu_uuid"] for c in claims}) == 2
    assert {c["id"] for c in claims} == {str(i) for i in Slice.objects.filter(active=True).values_list("id", flat=True)}


def test_racing_for_the_last_units_of_a_quota_never_overspends(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=4)
    quota = dict(
        guarantee_compute_units=0,
        limit_compute_units=300,
        guarantee_memory_mib=0,
        limit_memory_mib=10**6,
        guarantee_slices=0,
        limit_slices=100,
    )
    tenant, project, user, _ = fleet.tenant("acme", quota=quota)

    def request(i):
        allocation, _ = allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=10, memory_mib=100)
        return allocation.state

    outcomes = _race(request)
    assert outcomes.count("running") == 30 and outcomes.count("refused") == RACERS - 30
    assert Allocation.objects.filter(state="running").count() == 30
    assert sum(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == 300
    assert len(fleet.claims()) == 30
