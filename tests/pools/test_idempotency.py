"""``Idempotency-Key``: the same request replays its first answer; a different one under a used key is refused, naming the key."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from pools.models import Allocation

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, project, key, **body):
    body = {"project": str(project.id), "count": 1, "compute_units": 10, "memory_mib": 1024, **body}
    return client.post("/api/v1/allocations", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_body_replays_and_a_different_one_is_a_422_naming_the_key(fleet):
    _, project, _, client = fleet.tenant("acme")
    first = _post(client, project, "job-42")
    assert first.status_code == 201
    replay = _post(client, project, "job-42")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    other = _post(client, project, "job-42", compute_units=20)
    assert other.status_code == 422 and other["Content-Type"] == "application/problem+json"
    problem = other.json()
    assert "job-42" in problem["detail"] and problem["type"].endswith("/idempotency_key_reused")
    assert problem["errors"] == {"Idempotency-Key": [problem["detail"]]}
    assert Allocation.objects.count() == 1


def test_sixteen_different_bodies_racing_under_one_key_make_one_allocation(fleet):
    _, project, user, _ = fleet.tenant("acme")
    barrier = threading.Barrier(16)
    statuses = []

    def post(i):
        client = APIClient()
        client.force_login(user)
        try:
            barrier.wait()
            statuses.append(_post(client, project, "nightly", compute_units=1 + i).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [201] + [422] * 15
    assert Allocation.objects.count() == 1
