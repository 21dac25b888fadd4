"""Requesting, releasing and reading allocations through the API, against a real agent."""

import pytest

from ocenter.models import AuditEntry
from pools.models import Accelerator, Allocation

pytestmark = pytest.mark.django_db


def _ask(client, project, headers=None, **body):
    body = {"project": str(project.id), "compute_units": 25, "memory_mib": 10240, **body}
    return client.post("/api/v1/allocations", body, format="json", **(headers or {}))


def test_request_runs_on_the_agent_and_release_frees_it(fleet):
    tenant, project, user, client = fleet.tenant("acme")
    response = _ask(client, project, labels={"job": "train"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "running" and body["tenant"] == "acme"
    (slice_,) = body["slices"]
    assert slice_["env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert [c["id"] for c in fleet.claims()] == [slice_["id"]]
    gpu = Accelerator.objects.get(uuid=slice_["gpu_uuid"])
    assert (gpu.allocated_compute_units, gpu.allocated_memory_mib) == (25, 10240)

    released = client.delete(f"/api/v1/allocations/{body['id']}")
    assert released.status_code == 200 and released.json()["state"] == "released"
    assert fleet.claims() == []
    gpu.refresh_from_db()
    assert (gpu.allocated_compute_units, gpu.allocated_memory_mib) == (0, 0)
    again = client.delete(f"/api/v1/allocations/{body['id']}")
    assert again.status_code == 200 and again.json()["state"] == "released"
    history = client.get(f"/api/v1/allocations/{body['id']}/events").json()
    assert [(e["from_state"], e["to_state"]) for e in history] == [
        ("", "queued"),
        ("queued", "claiming"),
        ("claiming", "running"),
        ("running", "releasing"),
        ("releasing", "released"),
    ]
    assert AuditEntry.objects.filter(action="allocation.request", actor=user).exists()


def test_allocations_on_an_unreachable_pool_are_kept_and_flagged(fleet):
    from pools.services.sync import pool_sync

    _, project, _, client = fleet.tenant("acme")
    allocation = _ask(client, project).json()
    fleet.agent.stop()
    pool_sync(pool_id=fleet.pool.id)
    seen = client.get(f"/api/v1/allocations/{allocation['id']}").json()
    assert seen["state"] == "running" and seen["unreachable_pools"] == ["bj"]


def test_idempotency_key_returns_the_first_allocation(fleet):
    tenant, project, user, client = fleet.tenant("acme")
    first = _ask(client, project, headers={"HTTP_IDEMPOTENCY_KEY": "job-42"})
    second = _ask(client, project, headers={"HTTP_IDEMPOTENCY_KEY": "job-42"})
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Allocation.objects.count() == 1 and len(fleet.claims()) == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"compute_units": 0}, "compute_units"),
        ({"compute_units": 101}, "compute_units"),
        ({"memory_mib": 81921}, "memory_mib"),
        ({"accelerator_model": "B200"}, "accelerator_model"),
        ({"pool": "nowhere"}, "pool"),
        ({"count": 3}, "count"),
        ({"priority": "urgent"}, "priority"),
        ({"lease_seconds": 5}, "lease_seconds"),
    ],
)
def test_bad_requests_name_the_field_and_store_nothing(fleet, body, field):
    tenant, project, user, client = fleet.tenant("acme")
    response = _ask(client, project, **body)
    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]
    assert not Allocation.objects.exists() and fleet.claims() == []


def test_another_tenants_project_is_not_there(fleet):
    _, other_project, _, _ = fleet.tenant("globex")
    _, _, _, client = fleet.tenant("acme")
    response = _ask(client, other_project)
    assert response.status_code == 400 and "project" in response.json()["errors"]
    assert not Allocation.objects.exists()


def test_viewers_cannot_request(fleet):
    from tenants.models import Role

    _, project, _, client = fleet.tenant("acme", role=Role.VIEWER)
    assert _ask(client, project).status_code == 403


def test_over_quota_is_refused_naming_the_limit(fleet):
    quota = dict(
        guarantee_compute_units=0,
        limit_compute_units=30,
        guarantee_memory_mib=0,
        limit_memory_mib=10**6,
        guarantee_slices=0,
        limit_slices=10,
    )
    _, project, _, client = fleet.tenant("acme", quota=quota)
    assert _ask(client, project, compute_units=20).status_code == 201
    assert _ask(client, project, compute_units=10).status_code == 201  # 20 + 10 == 30: integers, exactly
    refused = _ask(client, project, compute_units=1)
    assert refused.status_code == 403
    body = refused.json()
    assert (body["limit"], body["used"], body["asked"], body["dimension"]) == (30, 30, 1, "compute_units")
    assert Allocation.objects.count() == 2


def test_no_room_waits_in_the_queue_and_starts_when_room_frees(fleet, django_capture_on_commit_callbacks):
    _, project, _, client = fleet.tenant("acme")
    running = [_ask(client, project, compute_units=100, memory_mib=1000).json() for _ in range(2)]
    assert [r["state"] for r in running] == ["running", "running"]
    waiting = _ask(client, project, compute_units=100, memory_mib=1000).json()
    assert waiting["state"] == "queued" and waiting["queue_position"] == 1
    assert "waiting for room" in waiting["reason"]
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(f"/api/v1/allocations/{running[0]['id']}")
    started = client.get(f"/api/v1/allocations/{waiting['id']}").json()
    assert started["state"] == "running" and started["queue_position"] is None


def test_lists_filter_and_other_tenants_allocations_are_404(fleet):
    _, acme_project, _, acme = fleet.tenant("acme")
    _, globex_project, _, globex = fleet.tenant("globex")
    mine = _ask(acme, acme_project).json()
    theirs = _ask(globex, globex_project).json()
    assert [a["id"] for a in acme.get("/api/v1/allocations").json()["results"]] == [mine["id"]]
    assert acme.get(f"/api/v1/allocations/{theirs['id']}").status_code == 404
    assert acme.delete(f"/api/v1/allocations/{theirs['id']}").status_code == 404
    assert acme.get("/api/v1/allocations?state=queued").json()["count"] == 0
    assert acme.get("/api/v1/allocations?state=running&pool=bj").json()["count"] == 1


def test_the_written_out_answer_is_what_the_generic_serializer_gives(fleet):
    """AllocationSerializer and SliceSerializer write their answers out (the hot path); the declared fields stay the contract."""
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer

    from pools.api.serializers import AllocationSerializer
    from pools.selectors import allocations_for
    from tenants.access import Access

    tenant, project, user, client = fleet.tenant("acme")
    running = _ask(client, project, compute_units=100, labels={"job": "a"}, lease_seconds=3600).json()
    _ask(client, project, compute_units=100)  # both GPUs are full now
    queued = _ask(client, project, compute_units=100).json()
    released = _ask(client, project, compute_units=25).json()
    client.delete(f"/api/v1/allocations/{released['id']}")
    assert (running["state"], queued["state"], released["state"]) == ("running", "queued", "queued")

    class Generic(AllocationSerializer):
        def to_representation(self, instance):
            return serializers.ModelSerializer.to_representation(self, instance)

    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    page = list(allocations_for(Access.of(request)).prefetch_related("slices__pool", "slices__accelerator").order_by("created_at"))
    assert len(page) == 4
    for allocation in page:
        fast, generic = AllocationSerializer(allocation).data, Generic(allocation).data
        assert JSONRenderer().render(fast) == JSONRenderer().render(generic), allocation.state
        assert set(fast) == set(AllocationSerializer().fields)


def test_the_answer_to_a_request_is_what_reading_it_gives(fleet):
    """The POST answers from what it wrote, without reading it again: the same as a GET right after."""
    _, project, _, client = fleet.tenant("acme")
    made = _ask(client, project, labels={"job": "a"}, lease_seconds=600).json()
    seen = client.get(f"/api/v1/allocations/{made['id']}").json()
    assert made == {**seen, "usage": None}
    released = client.delete(f"/api/v1/allocations/{made['id']}").json()
    assert released == client.get(f"/api/v1/allocations/{made['id']}").json()


def test_a_queued_allocation_is_estimated_to_start_when_the_lease_at_its_position_ends(fleet):
    _, project, _, client = fleet.tenant("acme")
    leases = [_ask(client, project, compute_units=100, memory_mib=1000, lease_seconds=s).json() for s in (7200, 3600)]
    waiting = [_ask(client, project, compute_units=100, memory_mib=1000).json() for _ in range(3)]
    ends = sorted(Allocation.objects.get(id=a["id"]).expires_at for a in leases)
    page = {a["id"]: a for a in client.get("/api/v1/allocations?state=queued").json()["results"]}
    assert [page[w["id"]]["queue_position"] for w in waiting] == [1, 2, 3]
    # 1st in line: when the first lease ends; 2nd: the second; 3rd: no third lease ends.
    assert [page[w["id"]]["estimated_start"] for w in waiting] == [e.isoformat().replace("+00:00", "Z") for e in ends] + [None]
    one = client.get(f"/api/v1/allocations/{waiting[1]['id']}").json()
    assert one["estimated_start"] == page[waiting[1]["id"]]["estimated_start"]
