"""Bad input through the API and the pages: a 4xx problem that says what to change, never a 500, nothing half written."""

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership, Project, Role
from tenants.services import tenant_create

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


@pytest.fixture
def api(staff):
    client = APIClient()
    client.force_login(staff)
    return client


@pytest.fixture
def acme(staff):
    tenant = tenant_create(actor=staff, slug="acme", name="Acme")
    Project.objects.create(tenant=tenant, slug="main", name="Main")
    return tenant


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


# --- 500s from bad input -----------------------------------------------------------


def test_a_membership_without_a_role_is_a_400_naming_role(api, acme):
    body = _problem(api.post("/api/v1/memberships", {"tenant": "acme", "username": "newbie"}, format="json"), 400)
    assert set(body["errors"]) == {"role"}
    assert not Membership.objects.exists()


def test_a_negative_price_is_a_400(api):
    start = timezone.now().isoformat()
    body = _problem(api.post("/api/v1/prices", {"compute_gpu_hour": "-1.00", "effective_from": start}, format="json"), 400)
    assert set(body["errors"]) == {"compute_gpu_hour"}


@override_settings(DEBUG=False)
def test_json_nested_fifty_thousand_deep_is_a_400(api, acme):
    project = Project.objects.get()
    deep = "[" * 50_000 + "1" + "]" * 50_000
    raw = f'{{"project": "{project.id}", "compute_units": 10, "memory_mib": 10, "labels": {deep}}}'
    body = _problem(api.post("/api/v1/allocations", raw, content_type="application/json"), 400)
    assert "nested" in body["detail"]


def test_huge_numbers_on_the_preview_page_and_the_budget_form_are_form_errors(client, staff, acme):
    client.force_login(staff)
    project = Project.objects.get()
    preview = client.get(f"/t/acme/allocations/preview/?project={project.id}&count=1&compute_units=10&memory_mib={10**30}&priority=offline")
    assert preview.status_code == 200 and "memory" in preview.content.decode().lower()
    budget = client.post(
        "/t/acme/billing/",
        {"period": "monthly", "amount": "100", "thresholds": "50", "action": "notify", "grace_seconds": str(10**30)},
    )
    assert budget.status_code in (200, 400) and "grace" in budget.content.decode().lower()
    from billing.models import Budget

    assert not Budget.objects.exists()


def test_patching_a_membership_deleted_at_the_same_moment_is_a_404(api, acme, django_user_model, monkeypatch):
    from tenants import services

    user = django_user_model.objects.create_user("bea", password="pw-0123456789")
    membership = Membership.objects.create(tenant=acme, user=user, role=Role.MEMBER)
    real = services.membership_set_role

    def deleted_meanwhile(**kwargs):
        Membership.objects.filter(id=membership.id).delete()  # another request removed it
        return real(**kwargs)

    monkeypatch.setattr(services, "membership_set_role", deleted_meanwhile)
    body = _problem(api.patch(f"/api/v1/memberships/{membership.id}", {"role": "admin"}, format="json"), 404)
    assert body["title"] == "Not Found" and not Membership.objects.exists()


# --- everything under /api/v1/ is JSON ----------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_path_is_a_404_problem(api, debug):
    with override_settings(DEBUG=debug):
        body = _problem(api.get("/api/v1/no-such-thing"), 404)
    assert "/api/v1/schema/" in body["detail"]


def test_a_3_mb_body_is_a_413_problem(api):
    body = _problem(api.post("/api/v1/tenants", json.dumps({"slug": "x", "name": "y" * 3_000_000}), content_type="application/json"), 413)
    assert "bytes" in body["detail"]


def test_a_500_under_the_api_is_a_problem_document(staff, monkeypatch):
    from tenants.api import views

    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.TenantViewSet, "list", broken)
    client = APIClient(raise_request_exception=False)
    client.force_login(staff)
    body = _problem(client.get("/api/v1/tenants"), 500)
    assert "a bug" not in body["detail"]


@pytest.mark.parametrize("query", ["page_size=false", "page_size=0", "page=bogus", "status=bogus"])
def test_invalid_query_values_are_400s(api, acme, query):
    body = _problem(api.get(f"/api/v1/tenants?{query}"), 400)
    assert query.split("=")[0] in body["errors"]


def test_the_schema_documents_problem_responses_for_every_operation():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/") or "/schema" in path:
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "403", "404"):
                assert status in responses, f"{method.upper()} {path} does not document {status}"
                assert PROBLEM in responses[status]["content"], f"{method.upper()} {path} {status}"
            if method in ("post", "patch"):
                assert "409" in responses and "422" in responses, f"{method.upper()} {path}"
            if method == "delete":
                assert "409" in responses, f"{method.upper()} {path}"  # the last owner, a project still in use


def test_patching_a_quota_returns_what_the_schema_says(api, acme):
    from drf_spectacular.generators import SchemaGenerator

    created = api.post("/api/v1/quotas", {"tenant": "acme", "limit_compute_units": 100}, format="json").json()
    patched = api.patch(f"/api/v1/quotas/{created['id']}", {"limit_compute_units": 200}, format="json")
    assert patched.status_code == 200 and patched.json()["pool_name"] == "" and patched.json()["usage"] is not None
    operations = SchemaGenerator().get_schema(request=None, public=True)["paths"]["/api/v1/quotas/{id}"]

    def answer(method):
        return operations[method]["responses"]["200"]["content"]["application/json"]["schema"]

    assert answer("patch") == answer("get")  # the quota as read, not the shape of the change


# --- accepted though it should be refused --------------------------------------------


def test_a_project_description_of_a_megabyte_is_refused(api, acme):
    body = _problem(
        api.post("/api/v1/projects", {"tenant": "acme", "slug": "big", "name": "Big", "description": "x" * 10**6}, format="json"), 400
    )
    assert set(body["errors"]) == {"description"}


def test_a_token_already_expired_is_refused(api, acme):
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    body = _problem(api.post("/api/v1/tokens", {"tenant": "acme", "name": "old", "expires_at": past}, format="json"), 400)
    assert set(body["errors"]) == {"expires_at"} and not ApiToken.objects.exists()


def test_a_username_with_spaces_and_slashes_is_refused(api, acme):
    body = _problem(api.post("/api/v1/memberships", {"tenant": "acme", "username": "a b/../c", "role": "member"}, format="json"), 400)
    assert set(body["errors"]) == {"username"}


def test_a_budget_with_no_thresholds_is_refused(api, acme):
    body = _problem(
        api.post("/api/v1/budgets", {"tenant": "acme", "period": "monthly", "amount": "10", "thresholds": []}, format="json"), 400
    )
    assert set(body["errors"]) == {"thresholds"}


def test_unknown_fields_are_a_400_naming_them(api, acme):
    from pools.models import Allocation

    project = Project.objects.get()
    body = _problem(
        api.post(
            "/api/v1/allocations", {"project": str(project.id), "compute_units": 10, "memory_mib": 10, "pool_name": "bj"}, format="json"
        ),
        400,
    )
    assert set(body["errors"]) == {"pool_name"} and "pool" in body["errors"]["pool_name"][0]
    assert not Allocation.objects.exists()


def test_an_empty_tenant_says_what_to_give(api, acme):
    body = _problem(api.post("/api/v1/tokens", {"tenant": "", "name": "ci"}, format="json"), 400)
    message = body["errors"]["tenant"][0]
    assert "may not be null" not in message and "slug" in message


def test_a_form_post_from_the_browsable_api_is_not_refused_for_its_csrf_token(client, staff, acme):
    client.force_login(staff)
    response = client.post("/api/v1/projects", {"tenant": "acme", "slug": "web", "name": "Web", "csrfmiddlewaretoken": "x" * 32})
    assert response.status_code == 201, response.content[:300]


# --- what schemathesis found -----------------------------------------------------------


def test_nul_characters_anywhere_in_a_request_are_a_400(api, acme):
    body = _problem(api.post("/api/v1/quotas", {"tenant": "ac\u0000me", "limit_compute_units": 1}, format="json"), 400)
    assert "NUL" in body["detail"]
    assert "NUL" in _problem(api.get("/api/v1/tenants?slug=ac%00me"), 400)["detail"]
    assert "NUL" in _problem(api.get("/api/v1/accelerators/GPU-%00"), 400)["detail"]
    form = api.post("/api/v1/projects", {"tenant": "acme", "slug": "x", "name": "a\u0000b"})
    assert "NUL" in _problem(form, 400)["detail"]


def test_a_quota_beyond_what_its_columns_hold_is_a_400(api, acme):
    created = api.post("/api/v1/quotas", {"tenant": "acme", "limit_compute_units": 100}, format="json").json()
    body = _problem(api.patch(f"/api/v1/quotas/{created['id']}", {"limit_slices": 2**40}, format="json"), 400)
    assert set(body["errors"]) == {"limit_slices"}


def test_a_page_whose_url_holds_a_nul_is_a_400_not_a_500(client, staff, acme):
    client.force_login(staff)
    assert client.get("/console/audit/?tenant=ac%00me").status_code == 400


def test_a_page_size_of_a_unicode_digit_is_a_400(api):
    assert set(_problem(api.get("/api/v1/tenants?page_size=%C2%B2"), 400)["errors"]) == {"page_size"}  # "²"


def test_patching_a_project_deleted_at_the_same_moment_is_a_404(api, acme, monkeypatch):
    from tenants import services

    project = Project.objects.get()
    real = services.project_update

    def deleted_meanwhile(**kwargs):
        Project.objects.filter(id=project.id).delete()  # another request removed it
        return real(**kwargs)

    monkeypatch.setattr(services, "project_update", deleted_meanwhile)
    body = _problem(api.patch(f"/api/v1/projects/{project.id}", {"name": "Renamed"}, format="json"), 404)
    assert body["title"] == "Not Found" and not Project.objects.exists()
