"""API tokens: shown once, stored hashed, expire, revoke, and never act above their creator's current role."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken, Membership, Role
from tenants.services import membership_remove, membership_set_role, token_create, token_revoke
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(db):
    return TenantFactory(slug="acme")


@pytest.fixture
def owner(acme, django_user_model):
    user = django_user_model.objects.create_user("olive", password="pw-0123456789")
    Membership.objects.create(tenant=acme, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def admin(acme, django_user_model):
    user = django_user_model.objects.create_user("adam", password="pw-0123456789")
    Membership.objects.create(tenant=acme, user=user, role=Role.ADMIN)
    return user


def _api(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _create_project(client, slug="p"):
    return client.post("/api/v1/projects", {"tenant": "acme", "slug": slug, "name": slug}, format="json")


def test_secret_is_stored_hashed_with_a_visible_prefix(admin, acme):
    token, secret = token_create(actor=admin, user=admin, tenant=acme, name="ci")
    token.refresh_from_db()
    assert token.prefix == secret[:12] and token.secret_hash == ApiToken.hash_secret(secret)
    assert secret not in token.secret_hash and len(secret) > 40
    listed = _api(secret).get("/api/v1/tokens").json()["results"]
    assert [t["prefix"] for t in listed] == [token.prefix] and "token" not in listed[0]


def test_missing_wrong_expired_and_revoked_tokens_are_401(admin, acme):
    assert APIClient().get("/api/v1/tenants").status_code == 401
    assert _api("ocn_notarealtokenatall").get("/api/v1/tenants").status_code == 401
    expired, secret = token_create(actor=admin, user=admin, tenant=acme, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    response = _api(secret).get("/api/v1/tenants")
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    token, secret = token_create(actor=admin, user=admin, tenant=acme, name="gone")
    token_revoke(actor=admin, token=token)
    response = _api(secret).get("/api/v1/tenants")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_last_used_is_recorded(admin, acme):
    token, secret = token_create(actor=admin, user=admin, tenant=acme, name="ci")
    assert token.last_used_at is None
    _api(secret).get("/api/v1/tenants")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_follows_its_creators_current_role(admin, owner, acme):
    token, secret = token_create(actor=admin, user=admin, tenant=acme, name="ci")
    assert _create_project(_api(secret), "first").status_code == 201
    membership_set_role(actor=owner, membership=Membership.objects.get(user=admin), role=Role.VIEWER)
    response = _create_project(_api(secret), "second")
    assert response.status_code == 403 and "you are viewer" in response.json()["detail"]


def test_a_token_capped_below_its_creator_cannot_write(admin, acme):
    _, secret = token_create(actor=admin, user=admin, tenant=acme, name="dashboard", role=Role.VIEWER)
    assert _api(secret).get("/api/v1/projects").status_code == 200
    assert _create_project(_api(secret)).status_code == 403


def test_a_token_cannot_be_made_above_its_creators_role(acme, django_user_model):
    user = django_user_model.objects.create_user("mia", password="pw-0123456789")
    Membership.objects.create(tenant=acme, user=user, role=Role.MEMBER)
    client = APIClient()
    client.force_login(user)
    response = client.post("/api/v1/tokens", {"tenant": "acme", "name": "x", "role": "owner"}, format="json")
    assert response.status_code == 400 and "role" in response.json()["errors"]
    assert not ApiToken.objects.exists()


def test_leaving_the_tenant_revokes_the_members_tokens(admin, owner, acme):
    _, secret = token_create(actor=admin, user=admin, tenant=acme, name="ci")
    membership_remove(actor=owner, membership=Membership.objects.get(user=admin))
    assert _api(secret).get("/api/v1/tenants").status_code == 401


def test_a_tenant_token_of_a_staff_user_stays_inside_its_tenant(acme, staff):
    other = TenantFactory(slug="globex")
    _, secret = token_create(actor=staff, user=staff, tenant=acme, name="support")
    api = _api(secret)
    assert [t["slug"] for t in api.get("/api/v1/tenants").json()["results"]] == ["acme"]
    assert api.get(f"/api/v1/tenants/{other.id}").status_code == 404
    assert api.post("/api/v1/tenants", {"slug": "new", "name": "New"}, format="json").status_code == 403


def test_non_staff_cannot_make_a_platform_token(admin):
    client = APIClient()
    client.force_login(admin)
    response = client.post("/api/v1/tokens", {"tenant": None, "name": "x"}, format="json")
    assert response.status_code == 403 and not ApiToken.objects.exists()
