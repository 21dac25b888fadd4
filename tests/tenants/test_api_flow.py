"""The issue's 'done when', through the API alone.

Staff token → tenant, project, member, quota; the member's own token sees only its tenant.
"""

import base64

import pytest
from rest_framework.test import APIClient

from ocenter.models import AuditEntry
from tenants.models import ApiToken, Tenant
from tenants.services import tenant_create, token_create

pytestmark = pytest.mark.django_db


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_staff_token_builds_a_tenant_and_the_members_token_sees_only_it(staff):
    other = tenant_create(actor=None, slug="globex", name="Globex")
    _, staff_secret = token_create(actor=staff, user=staff, tenant=None, name="platform")
    api = _bearer(staff_secret)

    tenant = api.post("/api/v1/tenants", {"slug": "acme", "name": "Acme Robotics"}, format="json")
    assert tenant.status_code == 201, tenant.json()
    project = api.post("/api/v1/projects", {"tenant": "acme", "slug": "vision", "name": "Vision"}, format="json")
    assert project.status_code == 201, project.json()
    member = api.post(
        "/api/v1/memberships",
        {"tenant": "acme", "username": "carol", "email": "carol@example.com", "role": "member", "password": "correct-horse-battery"},
        format="json",
    )
    assert member.status_code == 201, member.json()
    quota = api.post(
        "/api/v1/quotas",
        {
            "tenant": "acme",
            "pool_name": "",
            "accelerator_model": "",
            "guarantee_compute_units": 400,
            "limit_compute_units": 800,
            "guarantee_memory_mib": 327680,
            "limit_memory_mib": 655360,
            "guarantee_slices": 8,
            "limit_slices": 16,
        },
        format="json",
    )
    assert quota.status_code == 201, quota.json()
    assert quota.json()["usage"]["left"] == {"compute_units": 800, "memory_mib": 655360, "slices": 16}

    # Carol trades her password for a token of her own, for acme.
    carol = APIClient()
    carol.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"carol:correct-horse-battery").decode())
    made = carol.post("/api/v1/tokens", {"tenant": "acme", "name": "laptop"}, format="json")
    assert made.status_code == 201, made.json()
    secret = made.json()["token"]
    assert secret.startswith("ocn_") and not ApiToken.objects.filter(secret_hash=secret).exists()
    assert secret not in str(list(AuditEntry.objects.values_list("changes", flat=True)))

    mine = _bearer(secret)
    tenants = mine.get("/api/v1/tenants").json()
    assert [t["slug"] for t in tenants["results"]] == ["acme"]
    assert mine.get(f"/api/v1/tenants/{other.id}").status_code == 404
    assert mine.get(f"/api/v1/tenants/{tenant.json()['id']}").status_code == 200
    assert [q["id"] for q in mine.get("/api/v1/quotas").json()["results"]] == [quota.json()["id"]]
    assert mine.post("/api/v1/tenants", {"slug": "x", "name": "X"}, format="json").status_code == 403

    acme = Tenant.objects.get(slug="acme")
    actions = list(AuditEntry.objects.filter(tenant_id=acme.id).order_by("at").values_list("action", flat=True))
    assert actions == ["tenant.create", "project.create", "user.create", "membership.create", "quota.create", "token.create"]
    assert (
        AuditEntry.objects.get(action="tenant.create", tenant_id=acme.id).actor_label == f"{staff.username} via token {staff_secret[:12]}…"
    )
