"""What every endpoint shares: problem documents, pagination, the schema and its docs, the audit log."""

import pytest
from rest_framework.test import APIClient

from ocenter.models import AuditEntry
from tenants.models import Membership, Role
from tenants.services import project_create, tenant_create

pytestmark = pytest.mark.django_db


def test_schema_validates_and_docs_need_no_cdn(client, staff):
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert {"/api/v1/tenants", "/api/v1/quotas", "/api/v1/tokens", "/api/v1/pools", "/api/v1/audit"} <= set(schema["paths"])
    client.force_login(staff)
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs
    assert "cdn" not in docs.lower()


def test_bad_input_is_a_problem_document_naming_each_field(staff):
    api = APIClient()
    api.force_login(staff)
    response = api.post("/api/v1/tenants", {"slug": "Not A Slug", "name": ""}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["title"] == "Invalid input" and body["status"] == 400 and body["type"].endswith("/invalid")
    assert set(body["errors"]) == {"slug", "name"}
    assert "slug, name" in body["detail"] or "name, slug" in body["detail"]


def test_not_found_and_unauthenticated_are_problem_documents():
    response = APIClient().get("/api/v1/tenants")
    assert response.status_code == 401 and response.json()["title"] == "Unauthorized"
    assert response["Content-Type"] == "application/problem+json"


def test_lists_are_paginated_in_a_stable_order(staff):
    for i in range(7):
        tenant_create(actor=None, slug=f"t{i}", name=f"T{i}")
    api = APIClient()
    api.force_login(staff)
    first = api.get("/api/v1/tenants?page_size=3").json()
    second = api.get(first["next"]).json()
    assert first["count"] == 7 and [t["slug"] for t in first["results"]] == ["t0", "t1", "t2"]
    assert [t["slug"] for t in second["results"]] == ["t3", "t4", "t5"]
    assert api.get("/api/v1/tenants?status=suspended").json()["count"] == 0


def test_tenant_admins_read_only_their_tenants_audit(django_user_model, staff):
    acme = tenant_create(actor=staff, slug="acme", name="Acme")
    globex = tenant_create(actor=staff, slug="globex", name="Globex")
    project_create(actor=staff, tenant=globex, slug="secret", name="Secret")
    admin = django_user_model.objects.create_user("adam", password="pw-0123456789")
    Membership.objects.create(tenant=acme, user=admin, role=Role.ADMIN)
    api = APIClient()
    api.force_login(admin)
    entries = api.get("/api/v1/audit").json()["results"]
    assert entries and {e["tenant_id"] for e in entries} == {str(acme.id)}
    api.force_login(staff)
    assert api.get("/api/v1/audit?action=project.create").json()["count"] == 1
    assert AuditEntry.objects.filter(tenant_id=globex.id).count() == 2


def test_the_schema_and_docs_are_for_signed_in_people_by_default(client, staff):
    assert client.get("/api/v1/schema/").status_code == 401
    assert client.get("/api/v1/docs/").status_code == 401
    client.force_login(staff)
    assert client.get("/api/v1/schema/").status_code == 200
