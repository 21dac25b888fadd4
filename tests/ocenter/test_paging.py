"""Long lists are counted up to a cap: a page of a million rows does not pay for counting them all."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ocenter.lib.paging import CappedPaginator

pytestmark = pytest.mark.django_db


def test_the_count_stops_at_the_cap_and_says_so(monkeypatch):
    users = get_user_model().objects
    for i in range(5):
        users.create_user(f"u{i}")
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    capped = CappedPaginator(users.order_by("id"), 2)
    with CaptureQueriesContext(connection) as captured:
        assert (capped.count, capped.capped, capped.num_pages) == (3, True, 2)
    assert "LIMIT 4" in captured[0]["sql"].upper().replace('"', "")
    monkeypatch.setattr(CappedPaginator, "cap", 10)
    exact = CappedPaginator(users.order_by("id"), 2)
    assert (exact.count, exact.capped, exact.num_pages) == (5, False, 3)


def test_the_api_says_when_its_count_is_capped(fleet, staff, monkeypatch):
    from rest_framework.test import APIClient

    _, project, _, api = fleet.tenant("acme")
    for _ in range(3):
        api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 10, "memory_mib": 100}, format="json")
    client = APIClient()
    client.force_login(staff)
    assert (client.get("/api/v1/allocations").json()["count"], client.get("/api/v1/allocations").json()["count_capped"]) == (3, False)
    monkeypatch.setattr(CappedPaginator, "cap", 2)
    body = client.get("/api/v1/allocations?page_size=1").json()
    assert (body["count"], body["count_capped"], len(body["results"])) == (2, True, 1)
