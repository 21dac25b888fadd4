"""
Single sign-on with OpenID Connect (``mozilla-django-oidc``), configured from
the environment (``OCENTER_OIDC_*``, docs/OPERATIONS.md). Local passwords stay.

A person who signs in is the user named by the provider's username claim
(created on first sign-in, with no password of ours). Their groups (the
groups claim) decide, at every sign-in:

- staff: whether any of them is in ``OCENTER_OIDC_STAFF_GROUPS``;
- tenant roles: ``OCENTER_OIDC_TENANT_GROUPS`` maps a group to a tenant's
  role (``acme-admins=acme:admin``); the highest mapped role is granted, and
  a role granted by groups is raised, never lowered, by them (an owner made
  in oCenter stays one). Every change is audited, as the provider's doing.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from ocenter.audit import audit_record
from tenants.models import Membership, Role, Tenant


def _username(claims: dict) -> str:
    return str(claims.get(settings.OCENTER_OIDC_USERNAME_CLAIM) or claims.get("sub") or "")[:150]


def mapped_roles(groups) -> dict[str, str]:
    """``{tenant slug: role}`` the groups grant (the highest role where several map to one tenant)."""
    roles: dict[str, str] = {}
    for group in groups:
        for slug, role in settings.OCENTER_OIDC_TENANT_GROUPS.get(group, []):
            if Role.rank(role) > Role.rank(roles.get(slug)):
                roles[slug] = role
    return roles


@transaction.atomic
def sso_grants_apply(*, user, groups) -> None:
    """Staff and tenant roles as the provider's groups say (module docstring); audited, with "sso" as the actor."""
    staff = bool(set(groups) & set(settings.OCENTER_OIDC_STAFF_GROUPS))
    if user.is_staff != staff:
        audit_record(actor=None, action="user.sso_staff", obj=user, changes={"is_staff": [user.is_staff, staff], "via": "sso"})
        user.is_staff = staff
        user.save(update_fields=["is_staff"])
    tenants = {t.slug: t for t in Tenant.objects.filter(slug__in=mapped_roles(groups))}
    for slug, role in mapped_roles(groups).items():
        tenant = tenants.get(slug)
        if tenant is None:
            continue
        membership = Membership.objects.select_for_update().filter(tenant=tenant, user=user).first()
        if membership is None:
            membership = Membership.objects.create(tenant=tenant, user=user, role=role)
            audit_record(actor=None, action="membership.create", obj=membership, tenant_id=tenant.id,
                         changes={"username": user.get_username(), "role": role, "via": "sso"})  # fmt: skip
        elif Role.rank(role) > Role.rank(membership.role):
            audit_record(actor=None, action="membership.update", obj=membership, tenant_id=tenant.id,
                         changes={"role": [membership.role, role], "via": "sso"})  # fmt: skip
            membership.role = role
            membership.save(update_fields=["role"])


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, matching people by username and granting what their groups map to."""

    def filter_users_by_claims(self, claims):
        username = _username(claims)
        return get_user_model().objects.filter(username=username) if username else get_user_model().objects.none()

    def verify_claims(self, claims):
        return bool(_username(claims))

    def create_user(self, claims):
        user = get_user_model().objects.create_user(username=_username(claims), email=claims.get("email", "") or "")
        audit_record(actor=None, action="user.create", obj=user, changes={"username": user.get_username(), "via": "sso"})
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        sso_grants_apply(user=user, groups=_groups(claims))
        return user


def _groups(claims: dict) -> list[str]:
    groups = claims.get(settings.OCENTER_OIDC_GROUPS_CLAIM) or []
    return [str(g) for g in groups] if isinstance(groups, list) else [str(groups)]
