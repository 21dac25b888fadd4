"""Job arrays against a real agent: members placed one by one, written and claimed in bulk, each with its own state and key."""

import threading
import uuid

import pytest
from django.db import connections

from ocenter.errors import DomainError, Refused, Unprocessable
from pools.agent_client import AgentClient
from pools.models import Accelerator, Allocation, Slice
from pools.services.allocations import allocation_release, allocation_request_array, queue_drain
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)
State = Allocation.State
QUOTA_OF_3 = dict(guarantee_compute_units=0, limit_compute_units=150, guarantee_memory_mib=0, limit_memory_mib=10**6,
                  guarantee_slices=0, limit_slices=100)  # fmt: skip


def _array(who, members, key=None, **spec):
    tenant, project, user, _ = who
    spec = {"count": 1, "compute_units": 50, "memory_mib": 1000, **spec}
    return allocation_request_array(actor=user, tenant=tenant, project=project, members=members, idempotency_key=key, **spec)


def _single_claims_fail(monkeypatch):
    def claim(self, *args, **kwargs):
        raise AssertionError("claimed one at a time: the batch call was not used")

    monkeypatch.setattr(AgentClient, "claim", claim)


def test_an_array_runs_what_fits_claimed_in_one_call_and_the_rest_wait_saying_why(agents, django_user_model, monkeypatch):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    _single_claims_fail(monkeypatch)
    members, created = _array(acme, 7, key="job-1")
    assert created and [m.array_index for m in members] == list(range(7))
    assert len({m.id for m in members}) == 7 and len({m.array_id for m in members}) == 1
    assert [m.state for m in members] == [State.RUNNING] * 4 + [State.QUEUED] * 3  # 50 units each, two GPUs
    assert all(m.slices.all()[0].env for m in members[:4])  # the agent's launch environment, from the batch call
    assert all(m.reason.startswith("waiting for room") for m in members[4:])
    assert [m.idempotency_key for m in members] == [f"job-1/{i}" for i in range(7)]
    assert sorted(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == [100, 100]
    assert {c["id"] for c in fleet.claims()} == {str(i) for i in Slice.objects.filter(active=True).values_list("id", flat=True)}
    assert Allocation.objects.filter(array_id=members[0].array_id, state=State.QUEUED).count() == 3

    monkeypatch.undo()
    allocation_release(actor=acme[2], allocation=Allocation.objects.get(id=members[0].id))
    queue_drain()
    assert Allocation.objects.get(id=members[4].id).state == State.RUNNING  # the next member, in queue order


def test_members_past_the_quota_wait_for_it(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=4)
    acme = fleet.tenant("acme", quota=QUOTA_OF_3)
    members, _ = _array(acme, 5)
    assert [m.state for m in members] == [State.RUNNING] * 3 + [State.QUEUED] * 2
    assert all(m.reason.startswith("waiting for quota") for m in members[3:])
    assert sum(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == 150


@pytest.mark.parametrize(
    "spec,error",
    [({"memory_mib": 10**6}, DomainError), ({"compute_units": 100, "count": 2}, Refused)],  # no GPU that big; over the quota at once
)
def test_an_array_whose_first_member_is_refused_stores_nothing(agents, django_user_model, spec, error):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=4)
    acme = fleet.tenant("acme", quota=QUOTA_OF_3)
    with pytest.raises(error):
        _array(acme, 10, **spec)
    assert not Allocation.objects.exists() and fleet.claims() == []


def test_an_array_asked_again_under_its_key_is_answered_with_the_same_members(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    acme = fleet.tenant("acme")
    first, _ = _array(acme, 6, key="nightly")
    again, created = _array(acme, 6, key="nightly")
    assert not created and [m.id for m in again] == [m.id for m in first]
    assert Allocation.objects.count() == 6 and len(fleet.claims()) == 4
    with pytest.raises(Unprocessable, match="different request"):
        _array(acme, 6, key="nightly", compute_units=25)
    with pytest.raises(Unprocessable, match="different request"):
        _array(acme, 5, key="nightly")


def test_racing_arrays_never_oversubscribe(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=2, gpus=2)  # 4 GPUs: room for 8 members of 50 units
    tenants = [fleet.tenant(f"t{i}") for i in range(6)]
    barrier, states = threading.Barrier(len(tenants)), []

    def run(i):
        try:
            barrier.wait()
            states.extend(m.state for m in _array(tenants[i], 5)[0])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tenants))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert states.count(State.RUNNING) == 8 and states.count(State.QUEUED) == 22
    assert sorted(Accelerator.objects.values_list("allocated_compute_units", flat=True)) == [100] * 4
    assert len(fleet.claims()) == 8


def test_an_agent_without_batch_calls_is_claimed_one_at_a_time(agents, django_user_model, monkeypatch):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    monkeypatch.setattr(AgentClient, "claim_many", lambda self, claims: {})  # as claim_many answers a 404
    members, _ = _array(fleet.tenant("acme"), 3)
    assert [m.state for m in members] == [State.RUNNING] * 3
    assert len(fleet.claims()) == 3


def test_the_api_answers_each_member_and_lists_them_by_array(agents, django_user_model):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    _, project, _, client = fleet.tenant("acme")
    body = {"project": str(project.id), "compute_units": 50, "memory_mib": 1000, "members": 6}
    response = client.post("/api/v1/allocations/array", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["counts"] == {"running": 4, "queued": 2}
    assert [m["array_index"] for m in answer["members"]] == list(range(6))
    assert all(m["array"] == answer["array"] for m in answer["members"])
    assert [m["queue_position"] for m in answer["members"][4:]] == [1, 2]
    assert answer["members"][0]["slices"][0]["env"]
    listed = client.get(f"/api/v1/allocations?array={answer['array']}").json()["results"]
    assert sorted(m["array_index"] for m in listed) == list(range(6))
    assert client.post("/api/v1/allocations/array", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 200


@pytest.mark.parametrize("members", [0, 501, "many"])
def test_a_bad_member_count_is_a_400_naming_it_and_stores_nothing(agents, django_user_model, members):
    fleet = Fleet(agents, django_user_model, nodes=1, gpus=1)
    _, project, _, client = fleet.tenant("acme")
    response = client.post("/api/v1/allocations/array", {"project": str(project.id), "compute_units": 50, "memory_mib": 1000,
                                                          "members": members}, format="json")  # fmt: skip
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert "members" in response.json()["errors"]
    assert not Allocation.objects.exists()


def test_an_agent_without_batch_calls_has_its_claims_released_one_at_a_time(agents, django_user_model, monkeypatch):
    """The client's fallback, against a real agent that answers the batch paths as an older agent would (404)."""
    from pools.agent_client import AgentError

    fleet = Fleet(agents, django_user_model, nodes=1, gpus=2)
    client = AgentClient.for_pool(fleet.pool)
    gpu = fleet.agent.client().get("/v1/inventory").json()["nodes"][0]["accelerators"][0]["uuid"]
    held = [str(s) for s in (uuid.uuid4(), uuid.uuid4())]
    for claim_id in held:
        client.claim(claim_id, gpu_uuid=gpu, compute_units=10, memory_mib=100)
    real_call = AgentClient._call

    def older_agent(self, method, path, **kwargs):
        if method == "POST":
            raise AgentError(f"agent answered 404 to POST {path}", status=404)
        return real_call(self, method, path, **kwargs)

    monkeypatch.setattr(AgentClient, "_call", older_agent)
    assert client.claim_many([{"id": str(uuid.uuid4()), "gpu_uuid": gpu, "compute_units": 10, "memory_mib": 100}]) == {}
    assert client.release_many(held) == set(held)
    assert fleet.claims() == []
