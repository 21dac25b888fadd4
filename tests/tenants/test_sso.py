"""The provider's groups decide staff and tenant roles at every sign-in: raised by groups, never lowered by them."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from ocenter.models import AuditEntry
from ocenter.settings import _tenant_groups
from tenants.models import Membership, Role
from tenants.services import tenant_create
from tenants.sso import OIDCBackend, sso_grants_apply

pytestmark = pytest.mark.django_db


@pytest.fixture
def mapping(settings):
    settings.OCENTER_OIDC_STAFF_GROUPS = ["platform-admins"]
    settings.OCENTER_OIDC_TENANT_GROUPS = _tenant_groups("acme-admins=acme:admin,acme-devs=acme:member,ghosts=nowhere:owner")
    return tenant_create(actor=None, slug="acme", name="Acme")


def test_groups_grant_the_highest_mapped_role_and_staff(mapping):
    user = get_user_model().objects.create_user("erin")
    sso_grants_apply(user=user, groups=["acme-devs", "acme-admins", "ghosts", "platform-admins"])
    user.refresh_from_db()
    assert user.is_staff and Membership.objects.get(user=user, tenant=mapping).role == Role.ADMIN
    assert AuditEntry.objects.filter(action="user.sso_staff").count() == 1
    sso_grants_apply(user=user, groups=["acme-devs"])  # left the admins' group, and the staff's
    user.refresh_from_db()
    assert not user.is_staff and Membership.objects.get(user=user, tenant=mapping).role == Role.ADMIN  # a role is never lowered by groups
    before = AuditEntry.objects.count()
    sso_grants_apply(user=user, groups=["acme-devs"])  # the same again: nothing changes, nothing is written
    assert AuditEntry.objects.count() == before


def test_the_backend_matches_by_username_and_creates_a_user_without_a_password(mapping, settings):
    settings.OCENTER_OIDC_USERNAME_CLAIM = "preferred_username"
    backend = OIDCBackend.__new__(OIDCBackend)  # its settings are read in __init__ only for the HTTP calls, not used here
    assert not backend.verify_claims({"email": "x@example.com"})  # no username, no sub: no way to match a person
    user = backend.create_user({"preferred_username": "frank", "email": "frank@example.com", "groups": ["acme-devs"]})
    assert not user.has_usable_password() and Membership.objects.get(user=user).role == Role.MEMBER
    assert list(backend.filter_users_by_claims({"preferred_username": "frank"})) == [user]


def test_a_mapping_that_is_not_group_tenant_role_is_refused_at_start():
    with pytest.raises(ImproperlyConfigured, match="group=tenant:role"):
        _tenant_groups("acme-admins=acme:boss")
