"""
Guard rails that do not depend on timing: the hot paths run a bounded number
of queries, and lists do not grow a query per row (an N+1 fails here).
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from pools.models import Allocation

pytestmark = pytest.mark.django_db


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code < 400, response.content[:300]
    return len(captured)


def _ask(api, project, units=10):
    return api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": units, "memory_mib": 100}, format="json")


# Round trips of one allocate and one release through the API with a token, the fleet view in hand (BEGIN and
# COMMIT included, as the test's SAVEPOINTs). PostgreSQL writes a step's tables in one statement (ocenter.lib.rows):
# create is the token, the project, BEGIN, the tenant's lock, its usage, its quotas, its hard budgets, the statement
# that takes the room and stores the request, COMMIT, and the compare-and-set that runs it once claimed; release is
# the token, the allocation with its slices, two compare-and-sets and "does anyone wait?". SQLite takes a statement a table.
# Before issue 13: 28 and 21 (45 and 22 before issue 7).
CREATE_QUERIES = {"postgresql": 10, "sqlite": 18}
RELEASE_QUERIES = {"postgresql": 5, "sqlite": 14}


def test_allocation_create_and_release_stay_within_their_query_budget(fleet, settings):
    from rest_framework.test import APIClient

    from tenants.services import token_create

    settings.OCENTER_FLEET_SECONDS = 3600  # what a server does between its reads of the fleet
    tenant, project, user, _ = fleet.tenant("acme")
    _, secret = token_create(actor=None, user=user, tenant=tenant, name="ci")
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    _ask(api, project)  # warm: the fleet view, the token's last use
    create = _queries(lambda: _ask(api, project))
    allocation = Allocation.objects.order_by("-created_at").first()
    assert allocation.state == Allocation.State.RUNNING
    release = _queries(lambda: api.delete(f"/api/v1/allocations/{allocation.id}"))
    assert create <= CREATE_QUERIES[connection.vendor], create
    assert release <= RELEASE_QUERIES[connection.vendor], release


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/allocations",
        "/api/v1/pools",
        "/api/v1/accelerators",
        "/api/v1/quotas",
        "/api/v1/tenants",
        "/api/v1/memberships",
        "/api/v1/tokens",
        "/api/v1/audit",
        "/api/v1/budgets",
        "/api/v1/usage",
    ],
)
def test_lists_cost_the_same_for_two_rows_as_for_ten(fleet, staff, path):
    from rest_framework.test import APIClient

    from tests.factories import PoolFactory

    _, project, _, api = fleet.tenant("acme")
    staff_api = APIClient()
    staff_api.force_login(staff)
    for _ in range(2):
        _ask(api, project)
        PoolFactory()
    few = _queries(lambda: staff_api.get(path))
    for i in range(8):
        _ask(api, project)
        PoolFactory()
        fleet.tenant(f"more-{i}")
    many = _queries(lambda: staff_api.get(path))
    assert many == few, f"{path}: {few} queries for few rows, {many} for many"


def test_the_console_overview_costs_the_same_whatever_the_fleet(fleet, staff, client):
    _, project, _, api = fleet.tenant("acme")
    client.force_login(staff)
    _ask(api, project)
    few = _queries(lambda: client.get(reverse("console-overview")))
    from tests.factories import PoolFactory

    for _ in range(5):
        _ask(api, project)
        PoolFactory()
    many = _queries(lambda: client.get(reverse("console-overview")))
    assert many == few and few <= 14, (few, many)


def test_a_token_is_checked_with_its_creators_role_in_one_query(fleet):
    from rest_framework.test import APIClient

    from tenants.services import token_create

    tenant, _, user, _ = fleet.tenant("acme")
    _, secret = token_create(actor=None, user=user, tenant=tenant, name="ci")
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    api.get("/api/v1/projects")  # last_used_at is written on first use, then at most once a minute
    # The token with its creator's role (one query, not two), the page's count, the page.
    assert _queries(lambda: api.get("/api/v1/projects")) == 3


def test_a_list_of_queued_allocations_costs_the_same_for_any_queue(fleet, staff):
    """Positions and estimated starts are worked out once a page, not once a queued row."""
    from rest_framework.test import APIClient

    _, project, _, api = fleet.tenant("acme")
    staff_api = APIClient()
    staff_api.force_login(staff)
    whole = {"project": str(project.id), "compute_units": 100, "memory_mib": 100}
    for _ in range(2):  # the fleet's two GPUs, on leases
        api.post("/api/v1/allocations", {**whole, "lease_seconds": 600}, format="json")

    def wait(n):
        for _ in range(n):
            api.post("/api/v1/allocations", whole, format="json")

    wait(2)
    few = _queries(lambda: staff_api.get("/api/v1/allocations?state=queued"))
    wait(10)
    many = _queries(lambda: staff_api.get("/api/v1/allocations?state=queued"))
    assert Allocation.objects.filter(state=Allocation.State.QUEUED).count() == 12
    assert many == few, (few, many)


def test_a_drain_pass_that_places_nothing_costs_the_same_for_any_queue(fleet):
    """Requests the fleet has no room for are skipped on the view read once a pass: no lock, no query each."""
    from pools.services.allocations import queue_drain

    _, project, _, api = fleet.tenant("acme")
    whole = {"project": str(project.id), "compute_units": 100, "memory_mib": 100}

    def wait(n):
        for _ in range(n):
            api.post("/api/v1/allocations", whole, format="json")

    wait(4)  # two run, two wait
    with CaptureQueriesContext(connection) as few:
        assert queue_drain() == 0
    wait(20)
    with CaptureQueriesContext(connection) as many:
        assert queue_drain() == 0
    assert Allocation.objects.filter(state=Allocation.State.QUEUED).count() == 22
    assert len(many) == len(few), (len(few), len(many))


# A request that ends queued: the token, the project, BEGIN, the tenant's lock, its usage, its quotas, the GPUs
# with room for it (the fleet view says none: is it out of date?), the kinds of GPU there are (is it a request
# any GPU could take?), its hard budgets, the statement that stores it queued, COMMIT; then its place in the queue
# (the queue, the fleet's size, what each tenant holds and used lately) and its estimated start.
QUEUED_QUERIES = {"postgresql": 16, "sqlite": 18}


def test_a_request_that_waits_costs_the_same_for_any_queue(fleet, settings):
    """A queued POST neither reads the whole fleet again nor anything per waiting request."""
    from rest_framework.test import APIClient

    from tenants.services import token_create

    settings.OCENTER_FLEET_SECONDS = 3600
    tenant, project, user, _ = fleet.tenant("acme")
    _, secret = token_create(actor=None, user=user, tenant=tenant, name="ci")
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    whole = {"project": str(project.id), "compute_units": 100, "memory_mib": 100}
    for _ in range(3):  # the fleet's two GPUs, then one waits (and the view and the token are warm)
        api.post("/api/v1/allocations", whole, format="json")
    few = _queries(lambda: api.post("/api/v1/allocations", whole, format="json"))
    for _ in range(10):
        api.post("/api/v1/allocations", whole, format="json")
    many = _queries(lambda: api.post("/api/v1/allocations", whole, format="json"))
    assert Allocation.objects.filter(state=Allocation.State.QUEUED).count() == 13
    assert many == few, (few, many)
    assert few <= QUEUED_QUERIES[connection.vendor], few


def test_the_queue_page_and_the_heatmap_cost_the_same_for_any_queue_or_fleet(fleet, staff, client):
    """What blocks each waiting request is worked out once a kind of request, not once a row; the heatmap reads its GPUs whole."""
    from tests.factories import PoolFactory

    _, project, _, api = fleet.tenant("acme")
    client.force_login(staff)
    whole = {"project": str(project.id), "compute_units": 100, "memory_mib": 100}
    for _ in range(4):  # the fleet's two GPUs, then two that wait
        api.post("/api/v1/allocations", whole, format="json")
    few = _queries(lambda: client.get(reverse("pools:queue"))), _queries(lambda: client.get(reverse("pools:heatmap")))
    for _ in range(10):
        api.post("/api/v1/allocations", whole, format="json")
        PoolFactory()
    many = _queries(lambda: client.get(reverse("pools:queue"))), _queries(lambda: client.get(reverse("pools:heatmap")))
    assert Allocation.objects.filter(state=Allocation.State.QUEUED).count() == 12
    assert many == few, (few, many)
