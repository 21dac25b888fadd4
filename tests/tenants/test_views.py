"""Tenant pages in the console and the portal: who sees what, and the issue's flow done in the browser."""

import re

import pytest
from django.urls import reverse

from ocenter.models import AuditEntry
from tenants.models import ApiToken, Membership, Project, Quota, Role, Tenant
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(db):
    return TenantFactory(slug="acme", name="Acme")


def _member(django_user_model, tenant, name, role):
    user = django_user_model.objects.create_user(name, password="pw-0123456789")
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def owner(acme, django_user_model):
    return _member(django_user_model, acme, "olive", Role.OWNER)


@pytest.fixture
def member(acme, django_user_model):
    return _member(django_user_model, acme, "mia", Role.MEMBER)


def test_an_outsider_cannot_tell_the_tenant_exists(client, acme, outsider):
    client.force_login(outsider)
    assert client.get(reverse("tenants:detail", args=["acme"])).status_code == 404
    assert client.post(reverse("tenants:project_new", args=["acme"]), {"slug": "x", "name": "X"}).status_code == 404
    assert not Project.objects.exists()


def test_a_member_reads_but_cannot_manage(client, acme, member):
    client.force_login(member)
    assert client.get("/", follow=True).redirect_chain[-1][0] == reverse("tenants:detail", args=["acme"])
    page = client.get(reverse("tenants:detail", args=["acme"])).content.decode()
    assert "Acme" in page and "New project" not in page and "Add a member" not in page
    assert client.post(reverse("tenants:project_new", args=["acme"]), {"slug": "x", "name": "X"}).status_code == 403
    assert client.get(reverse("console-tenants")).status_code == 403
    assert client.get(reverse("console-audit")).status_code == 403


def test_a_suspended_tenant_is_read_only_for_its_members(client, acme, owner, staff):
    client.force_login(staff)
    client.post(reverse("tenants:status", args=["acme"]))
    acme.refresh_from_db()
    assert acme.status == Tenant.Status.SUSPENDED
    client.force_login(owner)
    assert client.get(reverse("tenants:detail", args=["acme"])).status_code == 200
    response = client.post(reverse("tenants:project_new", args=["acme"]), {"slug": "x", "name": "X"})
    assert response.status_code == 403 and not Project.objects.exists()


def test_a_member_makes_a_token_shown_once_with_a_curl_example(client, acme, member):
    client.force_login(member)
    response = client.post(reverse("tenants:token_new", args=["acme"]), {"name": "notebook"})
    page = response.content.decode()
    secret = re.search(r"ocn_[A-Za-z0-9_-]{40,}", page)[0]
    assert f'curl -H "Authorization: Bearer {secret}" http://testserver/api/v1/tenants' in page
    token = ApiToken.objects.get()
    assert token.secret_hash == ApiToken.hash_secret(secret) and token.user == member
    assert secret not in client.get(reverse("tenants:detail", args=["acme"])).content.decode()
    client.post(reverse("tenants:token_revoke", args=["acme", token.id]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_an_admin_cannot_set_the_whole_tenants_quota(client, acme, django_user_model):
    admin = _member(django_user_model, acme, "adam", Role.ADMIN)
    client.force_login(admin)
    response = client.post(
        reverse("tenants:quota_set", args=["acme"]),
        {
            "guarantee_compute_units": 0,
            "limit_compute_units": 100,
            "guarantee_memory_mib": 0,
            "limit_memory_mib": 0,
            "guarantee_slices": 0,
            "limit_slices": 0,
        },
        follow=True,
    )
    assert "Only platform staff" in response.content.decode()
    assert not Quota.objects.exists()


def test_bad_form_input_says_what_to_change(client, acme, staff):
    client.force_login(staff)
    amounts = {
        "guarantee_compute_units": 10,
        "limit_compute_units": 5,
        "guarantee_memory_mib": 0,
        "limit_memory_mib": 0,
        "guarantee_slices": 0,
        "limit_slices": 0,
    }
    page = client.post(reverse("tenants:quota_set", args=["acme"]), amounts, follow=True).content.decode()
    assert "limit_compute_units: The limit (5) must be at least the guarantee (10)." in page
    assert not Quota.objects.exists()


def test_the_issues_flow_in_the_browser(client, staff, django_user_model, settings):
    settings.OCENTER_USER_CREATION = "invitations"  # carol is new: her invitation makes her account
    client.force_login(staff)
    client.post(reverse("console-tenants"), {"slug": "acme", "name": "Acme Robotics"})
    client.post(reverse("tenants:project_new", args=["acme"]), {"slug": "vision", "name": "Vision"})
    invited = client.post(reverse("tenants:member_new", args=["acme"]), {"username": "carol", "role": "member"})
    link = re.search(r'id="invitation-link">http://testserver([^<]+)<', invited.content.decode())[1]
    client.post(
        reverse("tenants:quota_set", args=["acme"]),
        {
            "guarantee_compute_units": 400,
            "limit_compute_units": 800,
            "guarantee_memory_mib": 0,
            "limit_memory_mib": 655360,
            "guarantee_slices": 0,
            "limit_slices": 16,
        },
    )
    TenantFactory(slug="globex")

    client.logout()
    password = "carols-own-password-0123"
    assert client.post(link, {"password": password}).status_code == 302  # she takes the name and joins
    client.logout()
    assert client.login(username="carol", password=password)
    assert client.get(reverse("tenants:detail", args=["acme"])).status_code == 200
    assert client.get(reverse("tenants:detail", args=["globex"])).status_code == 404
    page = client.get(reverse("tenants:detail", args=["acme"])).content.decode()
    assert "vision" in page and "0 units / 800 units" in page

    client.logout()
    client.force_login(staff)
    audit = client.get(reverse("console-audit") + "?tenant=acme").content.decode()
    for action in ("tenant.create", "project.create", "invitation.create", "invitation.accept", "quota.create"):
        assert action in audit
    assert AuditEntry.objects.filter(action="quota.create", actor=staff).exists()


def test_the_console_lists_tenants_with_quota_and_budget_bars(client, staff, acme):
    from decimal import Decimal

    from billing.services import budget_set
    from tenants.services import quota_set

    quota_set(actor=None, tenant=acme, project=None, guarantee_compute_units=100, limit_compute_units=400)
    budget_set(actor=None, tenant=acme, amount=Decimal("1000.00"))
    client.force_login(staff)
    page = client.get(reverse("console-tenants")).content.decode()
    assert "0 units / 400 units" in page and "0.00 / 1000.00 (0%)" in page
