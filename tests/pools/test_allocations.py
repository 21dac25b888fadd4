"""Allocation services against real agents: preemption, agent faults, reconciliation, leases, suspension."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from pools.models import Accelerator, Allocation, Slice
from pools.services.allocations import allocation_request, leases_expire, queue_drain
from pools.services.reconcile import pool_reconcile
from tenants.models import Tenant
from tenants.services import tenant_update

pytestmark = pytest.mark.django_db
State = Allocation.State


def _request(tenant, project, user, **kwargs):
    spec = {"count": 1, "compute_units": 100, "memory_mib": 1000, "priority": "offline", **kwargs}
    return allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]


def _room(pool):
    return sorted(Accelerator.objects.filter(pool=pool).values_list("allocated_compute_units", flat=True))


def _agree(fleet):
    """oCenter's active slices on the pool are exactly the agent's claims."""
    held = {c["id"] for c in fleet.claims()}
    active = {str(i) for i in Slice.objects.filter(pool=fleet.pool, active=True).values_list("id", flat=True)}
    return held == active


def test_realtime_within_guarantee_preempts_the_fewest_youngest_offline_and_requeues(fleet, django_capture_on_commit_callbacks):
    filler, f_project, f_user, _ = fleet.tenant("filler")
    guarantee = dict(
        guarantee_compute_units=100,
        limit_compute_units=200,
        guarantee_memory_mib=10**6,
        limit_memory_mib=10**6,
        guarantee_slices=4,
        limit_slices=4,
    )
    urgent, u_project, u_user, _ = fleet.tenant("urgent", quota=guarantee)
    old = _request(filler, f_project, f_user, compute_units=50, requeue_on_preempt=True)
    young = _request(filler, f_project, f_user, compute_units=50, requeue_on_preempt=True)
    whole = _request(filler, f_project, f_user, compute_units=100, requeue_on_preempt=True)
    assert _room(fleet.pool) == [100, 100]

    with django_capture_on_commit_callbacks(execute=True):
        realtime = _request(urgent, u_project, u_user, compute_units=100, priority="realtime")
    assert realtime.state == State.RUNNING
    for a in (old, young, whole):
        a.refresh_from_db()
    # One victim (the whole-GPU one) beats two halves.
    assert whole.state == State.PREEMPTED and whole.preempted_by_id == realtime.id
    assert (old.state, young.state) == (State.RUNNING, State.RUNNING)
    requeued = Allocation.objects.get(requeued_from=whole)
    assert requeued.state == State.QUEUED and "requeued after preemption" in requeued.reason
    assert _agree(fleet)


def test_realtime_beyond_its_guarantee_waits_instead(fleet):
    filler, f_project, f_user, _ = fleet.tenant("filler")
    small = dict(
        guarantee_compute_units=50,
        limit_compute_units=200,
        guarantee_memory_mib=10**6,
        limit_memory_mib=10**6,
        guarantee_slices=4,
        limit_slices=4,
    )
    urgent, u_project, u_user, _ = fleet.tenant("urgent", quota=small)
    for _ in range(2):
        _request(filler, f_project, f_user)
    with pytest.raises(Exception, match="guarantee is 50"):
        _request(urgent, u_project, u_user, compute_units=100, priority="realtime")
    assert Allocation.objects.filter(state=State.RUNNING).count() == 2


def test_a_409_from_the_agent_places_again_elsewhere(fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    # Someone else holds GPU 0 on the agent, behind oCenter's back.
    gpus = list(Accelerator.objects.filter(pool=fleet.pool).order_by("index"))
    fleet.agent.client().put(f"/v1/allocations/{uuid.uuid4()}", json={"gpu_uuid": gpus[0].uuid, "compute_units": 100, "memory_mib": 1})
    allocation = _request(tenant, project, user, compute_units=60)
    assert allocation.state == State.RUNNING
    assert allocation.slices.get(active=True).accelerator_id == gpus[1].id
    assert _room(fleet.pool) == [0, 60]
    assert [e.to_state for e in allocation.events.all()] == ["queued", "claiming", "claiming", "running"]


def test_an_agent_that_does_not_answer_fails_the_allocation_and_holds_nothing(fleet, settings):
    settings.OCENTER_AGENT_TIMEOUT = 0.3
    tenant, project, user, _ = fleet.tenant("acme")
    fleet.agent.client().put("/v1/faults", json={"error_rate": 1.0})
    allocation = _request(tenant, project, user)
    assert allocation.state == State.FAILED and "503" in allocation.reason
    fleet.agent.client().put("/v1/faults", json={"error_rate": 0})
    assert fleet.claims() == [] and _room(fleet.pool) == [0, 0]


def test_crash_mid_claim_is_finished_by_reconcile(fleet, monkeypatch):
    tenant, project, user, _ = fleet.tenant("acme")
    from pools.services.allocations import request

    def crash(**kwargs):
        raise SystemExit("oCenter died before calling the agent")

    monkeypatch.setattr(request, "allocation_claim", crash)
    with pytest.raises(SystemExit):
        _request(tenant, project, user)
    monkeypatch.undo()
    allocation = Allocation.objects.get()
    assert allocation.state == State.CLAIMING and fleet.claims() == []
    Allocation.objects.filter(id=allocation.id).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert pool_reconcile(pool_id=fleet.pool.id)["finished"] == 1
    allocation.refresh_from_db()
    assert allocation.state == State.RUNNING and _agree(fleet)


def test_reconcile_releases_orphans_and_fails_what_the_agent_lost(fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    kept = _request(tenant, project, user, compute_units=50)
    lost = _request(tenant, project, user, compute_units=50)
    orphan = str(uuid.uuid4())
    gpu = Accelerator.objects.filter(pool=fleet.pool).order_by("index").last()
    fleet.agent.client().put(f"/v1/allocations/{orphan}", json={"gpu_uuid": gpu.uuid, "compute_units": 10, "memory_mib": 1})
    fleet.agent.client().delete(f"/v1/allocations/{lost.slices.get().id}")
    Allocation.objects.update(updated_at=timezone.now() - timedelta(minutes=5))

    counts = pool_reconcile(pool_id=fleet.pool.id)
    assert counts["orphans_released"] == 1 and counts["lost"] == 1
    lost.refresh_from_db()
    kept.refresh_from_db()
    assert lost.state == State.FAILED and "no longer holds" in lost.reason
    assert kept.state == State.RUNNING
    assert _agree(fleet) and sum(_room(fleet.pool)) == 50


def test_an_unreachable_pool_keeps_its_allocations_until_it_returns(fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    allocation = _request(tenant, project, user)
    fleet.agent.stop()
    assert "skipped" in pool_reconcile(pool_id=fleet.pool.id)
    allocation.refresh_from_db()
    assert allocation.state == State.RUNNING
    fleet.agent.start()
    pool_reconcile(pool_id=fleet.pool.id)
    allocation.refresh_from_db()
    assert allocation.state == State.RUNNING and _agree(fleet)


def test_leases_end(fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    allocation = _request(tenant, project, user, lease_seconds=60)
    assert allocation.expires_at is not None
    assert leases_expire(now=timezone.now()) == 0
    assert leases_expire(now=allocation.expires_at + timedelta(seconds=1)) == 1
    allocation.refresh_from_db()
    assert allocation.state == State.RELEASED and allocation.reason == "its lease ended" and fleet.claims() == []


def test_suspending_a_tenant_releases_everything_it_holds(fleet, staff, django_capture_on_commit_callbacks):
    tenant, project, user, _ = fleet.tenant("acme")
    running = [_request(tenant, project, user) for _ in range(2)]
    queued = _request(tenant, project, user)
    assert queued.state == State.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        tenant_update(actor=staff, tenant=tenant, status=Tenant.Status.SUSPENDED)
    states = set(Allocation.objects.values_list("state", flat=True))
    assert states == {State.RELEASED} and fleet.claims() == [] and len(running) == 2
    with pytest.raises(Exception, match="suspended"):
        _request(tenant, project, user)


def test_the_queue_drains_in_fair_order_as_work_ends(fleet, django_capture_on_commit_callbacks):
    a, a_project, a_user, _ = fleet.tenant("flooder")
    b, b_project, b_user, _ = fleet.tenant("patient")
    holding = [_request(a, a_project, a_user) for _ in range(2)]
    flood = [_request(a, a_project, a_user) for _ in range(5)]
    late = _request(b, b_project, b_user)
    assert all(x.state == State.QUEUED for x in [*flood, late])
    from pools.selectors import queue_positions

    assert queue_positions()[late.id] == 1  # the flooder holds everything already
    from pools.services.allocations import allocation_release

    with django_capture_on_commit_callbacks(execute=True):
        allocation_release(actor=a_user, allocation=holding[0])
    late.refresh_from_db()
    assert late.state == State.RUNNING
    assert queue_drain() == 0


def test_a_drained_pool_or_node_takes_nothing_new_and_keeps_what_runs(fleet, staff):
    from pools.services.pools import pool_set_draining

    tenant, project, user, _ = fleet.tenant("acme")
    running = _request(tenant, project, user, compute_units=50)
    pool_set_draining(actor=staff, pool=fleet.pool, draining=True)
    waiting = _request(tenant, project, user, compute_units=10)
    assert waiting.state == State.QUEUED
    running.refresh_from_db()
    assert running.state == State.RUNNING
    pool_set_draining(actor=staff, pool=fleet.pool, draining=False)
    node = fleet.pool.nodes.get()
    pool_set_draining(actor=staff, pool=fleet.pool, node=node, draining=True)
    assert _request(tenant, project, user, compute_units=10).state == State.QUEUED
    pool_set_draining(actor=staff, pool=fleet.pool, node=node, draining=False)
    assert _request(tenant, project, user, compute_units=10).state == State.RUNNING
    from ocenter.models import AuditEntry

    assert list(
        AuditEntry.objects.filter(action__in=["pool.drain", "pool.undrain", "node.drain", "node.undrain"])
        .order_by("at")
        .values_list("action", flat=True)
    ) == ["pool.drain", "pool.undrain", "node.drain", "node.undrain"]


def test_staff_preempt_a_running_allocation_and_it_is_requeued_if_it_asked(fleet, staff, client):
    tenant, project, user, _ = fleet.tenant("acme")
    allocation = _request(tenant, project, user, compute_units=50, requeue_on_preempt=True)
    client.force_login(staff)
    response = client.post(f"/console/allocations/{allocation.id}/preempt/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'data-state="preempted"' in response.content.decode()
    assert Allocation.objects.get(requeued_from=allocation).state == State.QUEUED  # the drain runs after commit
    assert fleet.claims() == []
    client.force_login(user)
    assert client.post(f"/console/allocations/{allocation.id}/preempt/").status_code == 403


def test_an_unreadable_pool_token_fails_the_allocation_cleanly(fleet):
    from pools.models import Pool

    tenant, project, user, _ = fleet.tenant("acme")
    Pool.objects.filter(id=fleet.pool.id).update(token_ciphertext="not-a-fernet-token")
    allocation = _request(tenant, project, user, compute_units=50)
    assert allocation.state == State.FAILED and "pool token" in allocation.reason
    assert _room(fleet.pool) == [0, 0] and fleet.claims() == []
