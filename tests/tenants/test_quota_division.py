"""Tenant admins divide the tenant's quota among projects, never beyond it — even when they race."""

import threading

import pytest
from django.db import connections
from rest_framework.test import APIClient

from ocenter.errors import DomainError
from tenants.models import Membership, Project, Quota, Role
from tenants.services import quota_set
from tests.factories import TenantFactory

AMOUNTS = dict(
    guarantee_compute_units=100,
    limit_compute_units=200,
    guarantee_memory_mib=1000,
    limit_memory_mib=2000,
    guarantee_slices=4,
    limit_slices=8,
)


@pytest.fixture
def setup(db, django_user_model):
    tenant = TenantFactory(slug="acme")
    admin = django_user_model.objects.create_user("adam", password="pw-0123456789")
    Membership.objects.create(tenant=tenant, user=admin, role=Role.ADMIN)
    projects = [Project.objects.create(tenant=tenant, slug=f"p{i}", name=f"P{i}") for i in range(8)]
    quota_set(actor=None, tenant=tenant, project=None, **AMOUNTS)
    return tenant, admin, projects


def _client(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_project_guarantees_add_up_to_the_tenants_at_most(setup):
    tenant, admin, projects = setup
    api = _client(admin)
    body = {"tenant": "acme", "guarantee_compute_units": 60, "limit_compute_units": 200}
    assert api.post("/api/v1/quotas", {**body, "project": str(projects[0].id)}, format="json").status_code == 201
    response = api.post("/api/v1/quotas", {**body, "project": str(projects[1].id)}, format="json")
    assert response.status_code == 400
    assert "guarantee_compute_units" in response.json()["errors"]
    assert "add up to 120" in response.json()["detail"]
    assert (
        api.post("/api/v1/quotas", {**body, "project": str(projects[1].id), "guarantee_compute_units": 40}, format="json").status_code
        == 201
    )


def test_project_limit_never_exceeds_the_tenants(setup):
    tenant, admin, projects = setup
    response = _client(admin).post(
        "/api/v1/quotas", {"tenant": "acme", "project": str(projects[0].id), "limit_compute_units": 201}, format="json"
    )
    assert response.status_code == 400 and "limit_compute_units" in response.json()["errors"]
    assert not Quota.objects.filter(project__isnull=False).exists()


def test_a_project_quota_needs_a_tenant_quota_for_its_scope(setup):
    tenant, admin, projects = setup
    response = _client(admin).post(
        "/api/v1/quotas",
        {"tenant": "acme", "project": str(projects[0].id), "pool_name": "sh-h100", "limit_compute_units": 10},
        format="json",
    )
    assert response.status_code == 400 and "pool_name" in response.json()["errors"]


def test_staff_cannot_shrink_the_tenant_quota_below_its_projects(setup, staff):
    tenant, admin, projects = setup
    quota_set(actor=admin, tenant=tenant, project=projects[0], guarantee_compute_units=80, limit_compute_units=150)
    quota = Quota.objects.get(project=None)
    response = _client(staff).patch(f"/api/v1/quotas/{quota.id}", {"guarantee_compute_units": 70}, format="json")
    assert response.status_code == 400
    quota.refresh_from_db()
    assert quota.guarantee_compute_units == 100


def test_limit_below_guarantee_is_refused_naming_the_field(setup, staff):
    response = _client(staff).post(
        "/api/v1/quotas", {"tenant": "acme", "pool_name": "bj", "guarantee_slices": 5, "limit_slices": 4}, format="json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == {"limit_slices": ["the limit (4) must be at least the guarantee (5)."]}


@pytest.mark.django_db(transaction=True)
def test_racing_admins_never_divide_more_than_the_tenant_has(django_user_model):
    tenant = TenantFactory(slug="race")
    projects = [Project.objects.create(tenant=tenant, slug=f"p{i}", name=f"P{i}") for i in range(12)]
    quota_set(actor=None, tenant=tenant, project=None, **AMOUNTS)
    barrier = threading.Barrier(len(projects))
    outcomes = []

    def divide(project):
        try:
            barrier.wait()
            quota_set(actor=None, tenant=tenant, project=project, guarantee_compute_units=30, limit_compute_units=30)
            outcomes.append("ok")
        except DomainError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=divide, args=(p,)) for p in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 3 and outcomes.count("refused") == 9
    total = sum(Quota.objects.filter(tenant=tenant, project__isnull=False).values_list("guarantee_compute_units", flat=True))
    assert total == 90
