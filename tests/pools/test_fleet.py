"""This process's view of the fleet: it finds the policy's best GPUs without a scan, and a stale view never misplaces."""

import random
import time
from decimal import Decimal

import pytest

from pools.fleet import FleetView, candidate_limit, fleet
from pools.models import Accelerator, Allocation, Node
from pools.placement import Ask, GpuState, place
from pools.services.allocations import allocation_request
from pools.services.pools import pool_set_draining
from tests.fleet import Fleet


def _random_fleet(rng, n=3000):
    costs = [Decimal("1"), Decimal("0.8"), Decimal("1")]  # a cost is the pool's
    return [
        GpuState(
            i,
            f"p{i % 3}",
            "r",
            i // 8,
            "NVIDIA",
            "A100",
            81920,
            rng.choice([0, 10, 25, 50, 75, 90, 100]),
            rng.choice([0, 8192, 20480, 40960, 81920]),
            costs[i % 3],
            i % 3,
        )
        for i in range(n)
    ]


def test_the_best_few_hold_what_placement_would_choose_from_the_whole_fleet():
    rng = random.Random(7)
    gpus = _random_fleet(rng)
    view = FleetView(gpus)
    for _ in range(300):
        units, mib = rng.choice([(1, 1), (10, 4096), (25, 16384), (50, 40960), (100, 81920)])
        ask = Ask(
            count=1, compute_units=units, memory_mib=mib, policy=rng.choice(["binpack", "spread", "cheapest"]), pool=rng.choice(["", "p1"])
        )
        assert place(ask, view.best(ask, limit=candidate_limit(ask))) == place(ask, gpus), ask


def test_room_taken_and_given_back_moves_a_gpu_in_the_order():
    gpus = [GpuState(i, "p", "r", 1, "NVIDIA", "A100", 81920, 0, 0) for i in range(4)]
    view = FleetView(gpus)
    ask = Ask(count=1, compute_units=30, memory_mib=1000)
    assert view.best(ask, limit=1)[0].id == 0  # all empty: lowest id
    view.add(2, 60, 10_000)
    assert view.best(ask, limit=1)[0].id == 2  # binpack: now the fullest
    assert [g.id for g in view.best(Ask(count=1, compute_units=30, memory_mib=1000, policy="spread"))][-1] == 2
    view.add(2, 20, 0)  # 80 allocated: no room for 30 left
    assert 2 not in [g.id for g in view.best(ask)]
    view.add(2, -80, -10_000)
    assert view.gpus[2].allocated_units == 0 and [g.id for g in view.best(ask)] == [0, 1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_a_stale_view_is_corrected_where_the_room_is_taken(agents, django_user_model, settings):
    settings.OCENTER_FLEET_SECONDS = 3600  # the view is read once and never again on its own
    world = Fleet(agents, django_user_model, nodes=2, gpus=2)
    tenant, project, _, _ = world.tenant("acme")
    fleet.forget()
    first, _ = allocation_request(actor=None, tenant=tenant, project=project, count=1, compute_units=60, memory_mib=100)
    assert first.state == Allocation.State.RUNNING
    home = first.slices.get().accelerator
    # Behind the view's back: another process fills every other GPU of that node, and its node is drained.
    Accelerator.objects.filter(node=home.node).exclude(id=home.id).update(allocated_compute_units=100)
    pool_set_draining(actor=None, pool=world.pool, node=Node.objects.get(id=home.node_id), draining=True)
    # Binpack from the stale view would stack it on the fullest GPU, on the drained node; the database says no.
    second, _ = allocation_request(actor=None, tenant=tenant, project=project, count=1, compute_units=30, memory_mib=100)
    assert second.state == Allocation.State.RUNNING
    assert second.slices.get().accelerator.node_id != home.node_id
    # And no GPU holds more than it has, whatever the view believed.
    assert not Accelerator.objects.filter(allocated_compute_units__gt=100).exists()
    fleet.forget()


@pytest.fixture
def one_full_gpu(agents, django_user_model, settings):
    """(tenant, project) on a fleet of one GPU, full, that this process's view will read so and keep."""
    settings.OCENTER_FLEET_SECONDS = 3600
    world = Fleet(agents, django_user_model, nodes=1, gpus=1)
    tenant, project, _, _ = world.tenant("acme")
    Accelerator.objects.update(allocated_compute_units=100)
    fleet.forget()
    yield tenant, project
    fleet.forget()


@pytest.mark.django_db(transaction=True)
def test_a_view_that_finds_no_room_is_read_again_before_the_request_waits(one_full_gpu):
    tenant, project = one_full_gpu
    assert fleet.best(Ask(count=1, compute_units=10, memory_mib=100)) == []
    Accelerator.objects.update(allocated_compute_units=0)  # another process released it
    allocation, _ = allocation_request(actor=None, tenant=tenant, project=project, count=1, compute_units=10, memory_mib=100)
    assert allocation.state == Allocation.State.RUNNING


@pytest.mark.django_db(transaction=True)
def test_an_old_view_answers_at_once_while_a_new_one_is_read_in_the_background(agents, django_user_model, settings):
    settings.OCENTER_FLEET_SECONDS = 0.05
    Fleet(agents, django_user_model, nodes=1, gpus=2)
    fleet.forget()
    ask = Ask(count=1, compute_units=10, memory_mib=100)
    assert len(fleet.best(ask)) == 2
    Accelerator.objects.update(allocated_compute_units=100)  # another process filled both
    time.sleep(0.1)
    assert len(fleet.best(ask)) == 2  # the old view answers, and a read starts
    deadline = time.monotonic() + 10
    while fleet.best(ask) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fleet.best(ask) == []
    fleet.forget()


@pytest.mark.django_db(transaction=True)
def test_a_view_is_mended_where_it_is_wrong_not_read_whole(agents, django_user_model, settings):
    """``refresh`` reads the GPUs with room for one ask, ``correct`` the GPUs named; the rest of the view stays as it was."""
    settings.OCENTER_FLEET_SECONDS = 3600
    Fleet(agents, django_user_model, nodes=1, gpus=3)
    a, b, c = Accelerator.objects.order_by("id")
    Accelerator.objects.update(allocated_compute_units=100)
    fleet.forget()
    ask = Ask(count=1, compute_units=40, memory_mib=100)
    assert fleet.best(ask) == []
    # Behind the view's back: one GPU freed, one taken to 70 units (still full in the view), one gone.
    Accelerator.objects.filter(id=a.id).update(allocated_compute_units=0)
    Accelerator.objects.filter(id=b.id).update(allocated_compute_units=70)
    fleet.refresh(ask)
    assert [g.id for g in fleet.best(ask)] == [a.id]  # b has no room for 40: not read, and the view had it full anyway
    assert [g.id for g in fleet.best(Ask(count=1, compute_units=30, memory_mib=100))] == [a.id]  # b is still full here
    Accelerator.objects.filter(id=a.id).update(allocated_compute_units=100)
    Accelerator.objects.filter(id=c.id).update(gone_at="2026-01-01T00:00:00Z")
    fleet.correct({a.id, b.id, c.id})
    assert [g.id for g in fleet.best(Ask(count=1, compute_units=30, memory_mib=100))] == [b.id]
    assert c.id not in [g.id for g in fleet.best(Ask(count=1, compute_units=0, memory_mib=0))]  # gone, so dropped
    fleet.forget()


@pytest.mark.django_db(transaction=True)
def test_a_drain_sees_room_another_process_gave_back(one_full_gpu):
    from pools.services.allocations import queue_drain

    tenant, project = one_full_gpu
    waiting, _ = allocation_request(actor=None, tenant=tenant, project=project, count=1, compute_units=10, memory_mib=100)
    assert waiting.state == Allocation.State.QUEUED
    Accelerator.objects.update(allocated_compute_units=0)  # released by another process: this one's view still says full
    assert queue_drain() == 1
    waiting.refresh_from_db()
    assert waiting.state == Allocation.State.RUNNING


@pytest.mark.django_db(transaction=True)
def test_catching_up_takes_again_only_the_gpus_that_changed(agents, django_user_model, settings):
    settings.OCENTER_FLEET_SECONDS = 3600
    world = Fleet(agents, django_user_model, nodes=2, gpus=2)
    a, b, c, d = Accelerator.objects.order_by("id")
    fleet.forget()
    before = dict(fleet._current().gpus)
    # Behind the view's back: one GPU half taken, one gone, one unhealthy; the others untouched.
    Accelerator.objects.filter(id=a.id).update(allocated_compute_units=50, allocated_memory_mib=100, outside_memory_mib=20)
    Accelerator.objects.filter(id=b.id).update(gone_at="2026-01-01T00:00:00Z")
    Accelerator.objects.filter(id=c.id).update(health=Accelerator.Health.UNHEALTHY)
    fleet.catch_up()
    after = fleet._current().gpus
    assert set(after) == {a.id, d.id}
    assert (after[a.id].allocated_units, after[a.id].allocated_mib) == (50, 120)
    assert after[d.id] is before[d.id]  # unchanged: not built again
    assert [g.id for g in fleet.best(Ask(count=1, compute_units=60, memory_mib=100))] == [d.id]
    # Healthy again: taken whole, as it is now.
    Accelerator.objects.filter(id=c.id).update(health=Accelerator.Health.HEALTHY, allocated_compute_units=10)
    fleet.catch_up()
    assert fleet._current().gpus[c.id].allocated_units == 10
    # A pool's cost changes every GPU's place under "cheapest": the view is read whole.
    type(world.pool).objects.filter(id=world.pool.id).update(cost_weight=Decimal("0.5"))
    fleet.catch_up()
    assert {g.cost for g in fleet._current().gpus.values()} == {Decimal("0.5")}
    fleet.forget()


@pytest.mark.django_db
def test_the_room_a_take_checks_is_the_room_with_room_means(agents, django_user_model):
    from django.db import connection

    from pools.services.allocations.room import _room_sql

    if connection.vendor != "postgresql":
        pytest.skip("the statement that takes room is PostgreSQL's (elsewhere a conditional UPDATE a GPU)")
    Fleet(agents, django_user_model, nodes=2, gpus=4)
    gpus = list(Accelerator.objects.order_by("id"))
    states = [(0, 0, 0, True), (90, 0, 0, True), (50, 70_000, 0, True), (0, 0, 75_000, True), (10, 0, 0, False), (100, 81_920, 0, True)]
    for gpu, (units, mib, outside, fractional) in zip(gpus, states, strict=False):
        Accelerator.objects.filter(id=gpu.id).update(
            allocated_compute_units=units, allocated_memory_mib=mib, outside_memory_mib=outside, fractional=fractional
        )
    Accelerator.objects.filter(id=gpus[6].id).update(health=Accelerator.Health.UNHEALTHY)
    ids = [g.id for g in gpus]
    for units, mib in [(10, 1000), (10, 10_000), (50, 1000), (100, 1000), (100, 81_920), (1, 1)]:
        allocation = Allocation(compute_units=units, memory_mib=mib)
        sql, params = _room_sql(allocation, ids)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            taken = {row[0] for row in cursor.fetchall()}
        assert taken == set(Accelerator.objects.placeable().with_room(compute_units=units, memory_mib=mib).values_list("id", flat=True))
