"""Claims in flight against real agents: a release that overtakes them, and answers that never arrive, leave nothing behind."""

import threading
import time

import pytest
from django.db import connections

from pools.agent_client import AgentClient, AgentUnreachable
from pools.models import Accelerator, Allocation, Slice
from pools.services.allocations import allocation_release, allocation_request
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)
State = Allocation.State


def _request(fleet_tenant, **kwargs):
    tenant, project, user, _ = fleet_tenant
    spec = {"count": 1, "compute_units": 100, "memory_mib": 1000, "priority": "offline", **kwargs}
    return allocation_request(actor=user, tenant=tenant, project=project, **spec)[0]


def _orphans(fleet) -> list[str]:
    """Claims on the agent that no active slice in oCenter stands for."""
    active = {str(i) for i in Slice.objects.filter(active=True).values_list("id", flat=True)}
    return [c["id"] for c in fleet.claims() if c["id"] not in active]


def _in_thread(work):
    def run():
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_release_that_overtakes_a_claim_in_flight_leaves_no_claim_on_the_agent(agents, django_user_model, monkeypatch):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    real_claim = AgentClient.claim

    def claim_after_a_release(self, claim_id, **kwargs):
        # The owner's DELETE arrives while this claim is on its way, and finishes first.
        allocation = Allocation.objects.get(slices__id=claim_id)
        _in_thread(lambda: allocation_release(actor=acme[2], allocation=allocation)).join(30)
        return real_claim(self, claim_id, **kwargs)

    monkeypatch.setattr(AgentClient, "claim", claim_after_a_release)
    allocation = _request(acme, count=2)
    monkeypatch.undo()

    allocation.refresh_from_db()
    assert allocation.state == State.RELEASED
    assert fleet.claims() == [], "the claim that lost the race to the release is undone at once"
    assert sum(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == 0
    # The next request on those GPUs is not refused by the agent.
    assert _request(acme, count=2).state == State.RUNNING


def test_releases_racing_claims_against_a_failing_agent_leave_no_orphan(agents, django_user_model):
    """The reproduction: agent error_rate 0.6, 2 × 100 units, DELETE while claiming, ten times."""
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    faults = fleet.agent.client()
    for _ in range(10):
        faults.put("/v1/faults", json={"error_rate": 0.6})
        request = _in_thread(lambda: _request(acme, count=2))
        deadline = time.monotonic() + 10
        while not Allocation.objects.filter(state=State.CLAIMING).exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        for allocation in Allocation.objects.exclude(state__in=Allocation.ENDED_STATES):
            allocation_release(actor=acme[2], allocation=allocation)
        request.join(30)
        faults.put("/v1/faults", json={"error_rate": 0})
        assert _orphans(fleet) == []
        for allocation in Allocation.objects.exclude(state__in=Allocation.ENDED_STATES):  # what the agent's 503s left releasing
            allocation.state = State.RUNNING
            allocation.save(update_fields=["state"])
            allocation_release(actor=acme[2], allocation=allocation)
        assert fleet.claims() == []


def test_a_claim_whose_answer_was_lost_is_settled_by_asking_the_agent(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    fleet.agent.client().put("/v1/faults", json={"lost_claim_answer_rate": 1.0})
    allocation = _request(acme, count=2)
    assert allocation.state == State.RUNNING, allocation.reason
    held = {c["id"] for c in fleet.claims()}
    assert held == {str(s.id) for s in allocation.slices.all()}
    assert all(s.env.get("CUDA_VISIBLE_DEVICES") for s in allocation.slices.all())


def test_a_failed_claim_undoes_claims_whose_answers_were_lost(agents, django_user_model, monkeypatch):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    fleet.agent.client().put("/v1/faults", json={"lost_claim_answer_rate": 1.0})

    def cannot_ask(self, claim_id):
        raise AgentUnreachable("the agent cannot be asked either")

    # The agent holds the claim; oCenter never heard so and cannot find out: it fails the allocation and undoes it.
    monkeypatch.setattr(AgentClient, "claimed", cannot_ask, raising=False)
    allocation = _request(acme)
    assert allocation.state == State.FAILED
    assert fleet.claims() == []
    assert sum(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == 0


def test_a_claim_that_cannot_be_undone_keeps_its_room_until_the_reconciler_releases_it(agents, django_user_model, monkeypatch):
    from pools.services.reconcile import pool_reconcile

    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    fleet.agent.client().put("/v1/faults", json={"lost_claim_answer_rate": 1.0})

    def unreachable(self, claim_id):
        raise AgentUnreachable("no answer")

    monkeypatch.setattr(AgentClient, "claimed", unreachable)
    monkeypatch.setattr(AgentClient, "release", unreachable)
    monkeypatch.setattr(AgentClient, "release_many", unreachable)
    allocation = _request(acme)
    monkeypatch.undo()
    assert allocation.state == State.FAILED
    # The agent may hold it (it does): the GPU is not offered to anyone else meanwhile.
    assert len(fleet.claims()) == 1 and _orphans(fleet) == []
    assert sorted(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == [0, 100]

    assert pool_reconcile(pool_id=fleet.pool.id)["leftovers_released"] == 1
    assert fleet.claims() == []
    assert sorted(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == [0, 0]


def test_a_release_whose_claimer_died_is_finished_by_the_reconciler_after_the_grace(agents, django_user_model, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from pools.services.allocations import request
    from pools.services.reconcile import pool_reconcile

    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")

    def crash(**kwargs):
        raise SystemExit("oCenter died before calling the agent")

    monkeypatch.setattr(request, "allocation_claim", crash)
    with pytest.raises(SystemExit):
        _request(acme)
    monkeypatch.undo()
    allocation = allocation_release(actor=acme[2], allocation=Allocation.objects.get())
    assert allocation.state == State.RELEASING  # its claimer would finish the release: it is gone
    assert pool_reconcile(pool_id=fleet.pool.id)["released"] == 0  # it may still be calling the agent
    Allocation.objects.filter(id=allocation.id).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert pool_reconcile(pool_id=fleet.pool.id)["released"] == 1
    allocation.refresh_from_db()
    assert allocation.state == State.RELEASED and fleet.claims() == []
    assert sum(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == 0
