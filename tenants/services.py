"""
Writes to tenants, projects, memberships, quotas and tokens. Each runs in one
transaction, writes its audit entry, and trusts input the view has checked;
it raises a DomainError only for what depends on the state it locks.
"""

import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from ocenter.audit import audit_record, field_changes
from ocenter.errors import Conflict, DomainError
from ocenter.seams import seams
from tenants.models import ApiToken, Invitation, Membership, Project, Quota, Role, Tenant
from tenants.quotas import DIMENSIONS


def _values(obj, fields) -> dict:
    return {f: getattr(obj, f) for f in fields}


def _update(obj, fields: dict, *, actor, action: str, tenant_id) -> dict:
    """Set ``fields`` on ``obj``; save and audit only what changed. Returns the changes."""
    before = _values(obj, fields)
    for name, value in fields.items():
        setattr(obj, name, value)
    changes = field_changes(before, fields)
    if changes:
        obj.save(update_fields=list(changes))
        audit_record(actor=actor, action=action, obj=obj, tenant_id=tenant_id, changes=changes)
    return changes


@transaction.atomic
def tenant_create(*, actor, slug: str, name: str) -> Tenant:
    """Create a tenant and record it in the audit log."""
    tenant = Tenant.objects.create(slug=slug, name=name)
    audit_record(actor=actor, action="tenant.create", obj=tenant, tenant_id=tenant.id, changes={"slug": slug, "name": name})
    return tenant


@transaction.atomic
def tenant_update(*, actor, tenant: Tenant, **fields) -> Tenant:
    """Change a tenant's name or status (suspend, reactivate)."""
    tenant = Tenant.objects.select_for_update(of=("self",)).get(id=tenant.id)
    changes = _update(tenant, fields, actor=actor, action="tenant.update", tenant_id=tenant.id)
    if changes.get("status", [None, None])[1] == Tenant.Status.SUSPENDED:
        # Pools release what the tenant holds; tenants know nothing of pools (ocenter.seams).
        transaction.on_commit(lambda: seams.tenant_suspended(tenant_id=tenant.id, actor=actor))
    return tenant


@transaction.atomic
def project_create(*, actor, tenant: Tenant, slug: str, name: str, description: str = "") -> Project:
    """Create a project in a tenant."""
    project = Project.objects.create(tenant=tenant, slug=slug, name=name, description=description)
    audit_record(
        actor=actor,
        action="project.create",
        obj=project,
        tenant_id=tenant.id,
        changes={"slug": slug, "name": name, "description": description},
    )
    return project


@transaction.atomic
def project_update(*, actor, project: Project, **fields) -> Project:
    """Rename or re-describe a project (one removed meanwhile raises DoesNotExist: a 404)."""
    project = Project.objects.select_for_update(of=("self",)).select_related("tenant").get(id=project.id)
    _update(project, fields, actor=actor, action="project.update", tenant_id=project.tenant_id)
    return project


@transaction.atomic
def project_delete(*, actor, project: Project):
    """Delete a project and its quotas (refused while anything still refers to it)."""
    audit_record(actor=actor, action="project.delete", obj=project, tenant_id=project.tenant_id, changes={"slug": project.slug})
    project.delete()


@transaction.atomic
def membership_add(*, actor, tenant: Tenant, username: str, email: str = "", role: str, password: str = "") -> tuple[Membership, str]:
    """Add a user to a tenant with a role, creating the user if new.

    Returns the membership and, for a new user given no password, a generated
    one to hand over (shown once).
    """
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    generated = ""
    if user is None:
        generated = "" if password else secrets.token_urlsafe(12)
        user = User.objects.create_user(username=username, email=email, password=password or generated)
        audit_record(actor=actor, action="user.create", obj=user, tenant_id=tenant.id, changes={"username": username, "email": email})
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise Conflict(f"{username} is already a member of {tenant.slug}; change the role instead", field="username")
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit_record(actor=actor, action="membership.create", obj=membership, tenant_id=tenant.id, changes={"username": username, "role": role})
    return membership, generated


def _check_owner_remains(membership: Membership):
    others = Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER).exclude(id=membership.id)
    if membership.role == Role.OWNER and not others.exists():
        raise Conflict(f"{membership.user.get_username()} is the last owner of {membership.tenant.slug}; make someone else owner first")


@transaction.atomic
def membership_set_role(*, actor, membership: Membership, role: str) -> Membership:
    """Change a member's role; a tenant always keeps at least one owner."""
    # Lock the tenant's owners so two demotions cannot both leave none.
    list(Membership.objects.select_for_update(of=("self",)).filter(tenant_id=membership.tenant_id, role=Role.OWNER).order_by())
    membership = Membership.objects.select_related("user", "tenant").get(id=membership.id)
    if role != Role.OWNER:
        _check_owner_remains(membership)
    if membership.role != role:
        audit_record(
            actor=actor,
            action="membership.update",
            obj=membership,
            tenant_id=membership.tenant_id,
            changes={"role": [membership.role, role]},
        )
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, actor, membership: Membership):
    """Take a user out of a tenant, and revoke the tokens it made for that tenant."""
    list(Membership.objects.select_for_update(of=("self",)).filter(tenant_id=membership.tenant_id, role=Role.OWNER).order_by())
    membership = Membership.objects.select_related("user", "tenant").get(id=membership.id)
    _check_owner_remains(membership)
    revoked = ApiToken.objects.filter(user=membership.user, tenant=membership.tenant, revoked_at=None).update(revoked_at=timezone.now())
    audit_record(
        actor=actor,
        action="membership.delete",
        obj=membership,
        tenant_id=membership.tenant_id,
        changes={"username": membership.user.get_username(), "role": membership.role, "tokens_revoked": revoked},
    )
    membership.delete()


def _check_division(quota: Quota):
    """A project's quota must fit inside the tenant's quota for the same scope, with its sibling projects."""
    scope = {"tenant_id": quota.tenant_id, "pool_name": quota.pool_name, "accelerator_model": quota.accelerator_model}
    if quota.project_id is None:
        parent = quota
        children = list(Quota.objects.filter(project__isnull=False, **scope))
    else:
        # The tenant's quota row is the lock that serializes every change in this scope.
        parent = Quota.objects.select_for_update(of=("self",)).filter(project__isnull=True, **scope).order_by().first()
        if parent is None:
            raise DomainError(
                f"the tenant has no quota for {quota.scope_label}: a project's quota divides the tenant's, so ask staff for that first",
                field="pool_name",
            )
        children = [q for q in Quota.objects.filter(project__isnull=False, **scope) if q.id != quota.id] + [quota]
    for d in DIMENSIONS:
        guaranteed = sum(getattr(c, f"guarantee_{d}") for c in children)
        if guaranteed > getattr(parent, f"guarantee_{d}"):
            raise DomainError(
                f"projects' guarantees would add up to {guaranteed} {d}, beyond the tenant's guarantee of "
                f"{getattr(parent, f'guarantee_{d}')} for {quota.scope_label}",
                field=f"guarantee_{d}",
            )
        over = [c for c in children if getattr(c, f"limit_{d}") > getattr(parent, f"limit_{d}")]
        if over:
            raise DomainError(
                f"a project's limit of {getattr(over[0], f'limit_{d}')} {d} is beyond the tenant's limit of "
                f"{getattr(parent, f'limit_{d}')} for {quota.scope_label}",
                field=f"limit_{d}",
            )


QUOTA_AMOUNTS = [f"{kind}_{d}" for d in DIMENSIONS for kind in ("guarantee", "limit")]


@transaction.atomic
def quota_set(*, actor, tenant: Tenant, project: Project | None, pool_name: str = "", accelerator_model: str = "", **amounts) -> Quota:
    """Create or change the quota for one scope; project quotas never exceed the tenant's."""
    quota = (
        Quota.objects.select_for_update(of=("self",))
        .filter(tenant=tenant, project=project, pool_name=pool_name, accelerator_model=accelerator_model)
        .order_by()
        .first()
    )
    created = quota is None
    if created:
        quota = Quota(tenant=tenant, project=project, pool_name=pool_name, accelerator_model=accelerator_model)
    before = _values(quota, QUOTA_AMOUNTS) if not created else {}
    for name, value in amounts.items():
        setattr(quota, name, value)
    if not created and not field_changes(before, _values(quota, QUOTA_AMOUNTS)):
        return quota  # the same amounts again: nothing to write, nothing to record
    _check_division(quota)
    try:
        with transaction.atomic():
            quota.save()
    except IntegrityError:
        raise Conflict("another quota for this scope was set at the same moment; try again") from None
    changes = field_changes(before, _values(quota, QUOTA_AMOUNTS))
    changes.update({"pool_name": pool_name, "accelerator_model": accelerator_model})
    audit_record(actor=actor, action="quota.create" if created else "quota.update", obj=quota, tenant_id=tenant.id, changes=changes)
    return quota


@transaction.atomic
def quota_delete(*, actor, quota: Quota):
    """Remove a quota (a tenant-wide one only when no project quota divides it)."""
    if (
        quota.project_id is None
        and Quota.objects.filter(
            tenant_id=quota.tenant_id, project__isnull=False, pool_name=quota.pool_name, accelerator_model=quota.accelerator_model
        ).exists()
    ):
        raise Conflict("projects' quotas divide this one: remove those first")
    audit_record(actor=actor, action="quota.delete", obj=quota, tenant_id=quota.tenant_id, changes=_values(quota, QUOTA_AMOUNTS))
    quota.delete()


@transaction.atomic
def token_create(
    *, actor, user, tenant: Tenant | None, name: str, role: str = "", expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Make an API token for ``user``; return it with its secret, the only time the secret is seen."""
    while True:
        secret = f"{ApiToken.PREFIX}_{secrets.token_urlsafe(32)}"
        prefix = secret[:12]
        if not ApiToken.objects.filter(prefix=prefix).exists():
            break
    token = ApiToken.objects.create(
        user=user,
        tenant=tenant,
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=ApiToken.hash_secret(secret),
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="token.create",
        obj=token,
        tenant_id=tenant.id if tenant else None,
        changes={"name": name, "prefix": prefix, "role": role, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return token, secret


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    """Revoke a token; revoking twice changes nothing."""
    updated = ApiToken.objects.filter(id=token.id, revoked_at=None).update(revoked_at=timezone.now())
    token.refresh_from_db()
    if updated:
        audit_record(actor=actor, action="token.revoke", obj=token, tenant_id=token.tenant_id, changes={"prefix": token.prefix})
    return token


# --- invitations ---------------------------------------------------------------

INVITATION_DAYS = 7


def invitation_create(*, actor, tenant: Tenant, username: str, role: str) -> tuple[Invitation, str]:
    """Invite ``username`` to ``tenant`` with ``role``: (the invitation, its link's secret, shown once).

    The answer is the same whether the name is anyone's yet or not; only a person already in the tenant is refused
    (the tenant's admins see its members anyway).
    """
    username = username.strip()
    if Membership.objects.filter(tenant=tenant, user__username__iexact=username).exists():
        raise Conflict(f"{username} is already a member of {tenant.slug}; change the role instead", field="username")
    secret = "inv_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = Invitation.objects.create(tenant=tenant, username=username, role=role, secret_hash=ApiToken.hash_secret(secret),
                                               invited_by=actor if getattr(actor, "pk", None) else None,
                                               expires_at=timezone.now() + timedelta(days=INVITATION_DAYS))  # fmt: skip
        audit_record(
            actor=actor, action="invitation.create", obj=invitation, tenant_id=tenant.id, changes={"username": username, "role": role}
        )
    return invitation, secret


@transaction.atomic
def invitation_accept(*, user, invitation: Invitation) -> Membership:
    """``user`` (the person invited: their username is the one invited) joins the tenant with the invited role."""
    invitation = Invitation.objects.select_for_update().select_related("tenant").get(id=invitation.id)
    if not invitation.open:
        raise Conflict("this invitation was accepted already, or it expired: ask for a new one")
    if user.get_username().lower() != invitation.username.lower():
        raise DomainError(f"this invitation is for {invitation.username}; log in as them to accept it")
    membership, created = Membership.objects.get_or_create(tenant=invitation.tenant, user=user, defaults={"role": invitation.role})
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(actor=user, action="invitation.accept", obj=invitation, tenant_id=invitation.tenant_id,
                 changes={"username": invitation.username, "role": membership.role, "joined": created})  # fmt: skip
    return membership


@transaction.atomic
def invitation_sign_up(*, invitation: Invitation, password: str):
    """A person new to oCenter takes their invitation's username, with this password, and joins (when the platform lets
    invitations create users: ``OCENTER_USER_CREATION``)."""
    from django.conf import settings
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if settings.OCENTER_USER_CREATION != "invitations":
        raise DomainError("on this platform, accounts are made by its staff (or by single sign-on): ask them for yours")
    User = get_user_model()
    if User.objects.filter(username__iexact=invitation.username).exists():
        raise Conflict(f"{invitation.username} has an account already: log in to accept the invitation")
    try:
        validate_password(password)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="password") from None
    user = User.objects.create_user(username=invitation.username, password=password)
    audit_record(actor=None, action="user.create", obj=user, tenant_id=invitation.tenant_id,
                 changes={"username": user.get_username(), "via": "invitation"})  # fmt: skip
    return user, invitation_accept(user=user, invitation=invitation)
