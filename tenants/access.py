"""
Who is asking, and what they may see and do. Every page, API endpoint and
websocket reaches tenant data through an ``Access``: staff see everything; a
member sees only the tenants it belongs to; a token is confined to its
tenant and never acts above its creator's current role.
"""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from tenants.models import ApiToken, Membership, Role, Tenant

STAFF = "staff"


class Access:
    """The rights of one user (and, through the API, one token) for one request."""

    def __init__(self, user, token: ApiToken | None = None):
        self.user = user
        self.token = token
        authenticated = bool(user and user.is_authenticated and user.is_active)
        # A staff user's tenant token acts inside that tenant only, like anyone's.
        self.is_staff = authenticated and user.is_staff and (token is None or token.tenant_id is None)
        self._roles = None if authenticated else {}

    @classmethod
    def of(cls, request) -> "Access":
        """The request's Access, computed once (works for Django and DRF requests)."""
        raw = getattr(request, "_request", request)
        access = getattr(raw, "_ocenter_access", None)
        if access is None:
            token = getattr(request, "auth", None)
            access = cls(request.user, token if isinstance(token, ApiToken) else None)
            raw._ocenter_access = access
        return access

    @property
    def roles(self) -> dict:
        """``{tenant_id: role}`` of the tenants this access reaches (staff reach all, beside this)."""
        if self._roles is None:
            if self.token is None:
                self._roles = dict(Membership.objects.filter(user=self.user).values_list("tenant_id", "role"))
            elif self.token.tenant_id is None:
                self._roles = {}  # a platform token: staff or nothing
            else:
                # Staff act as owners inside a tenant; the token's role caps it. The creator's role was read
                # with the token (authenticate_token); a token from elsewhere is looked up here.
                if hasattr(self.token, "creator_role"):
                    member = self.token.creator_role
                else:
                    member = (
                        Membership.objects.filter(user=self.user, tenant_id=self.token.tenant_id).values_list("role", flat=True).first()
                    )
                base = Role.OWNER if self.user.is_staff else member
                cap = self.token.role or base
                self._roles = {self.token.tenant_id: min(base, cap, key=Role.rank)} if base else {}
        return self._roles

    def role(self, tenant_id) -> str | None:
        if self.is_staff:
            return STAFF
        return self.roles.get(tenant_id)

    def has_role(self, tenant_id, minimum: str) -> bool:
        """At least ``minimum`` in the tenant (staff always)."""
        role = self.role(tenant_id)
        return role == STAFF or (role is not None and Role.rank(role) >= Role.rank(minimum))

    def tenant_ids(self):
        """The tenant ids this access reaches, or None for all (staff)."""
        return None if self.is_staff else set(self.roles)

    def scope(self, queryset, field: str = "tenant"):
        """``queryset`` narrowed to the tenants this access reaches."""
        ids = self.tenant_ids()
        return queryset if ids is None else queryset.filter(**{f"{field}__in": ids})

    def tenants(self):
        return self.scope(Tenant.objects.all(), field="id")


def get_tenant_for(access: Access, slug: str) -> Tenant:
    """The tenant, or 404 when it does not exist or this access does not reach it."""
    return get_object_or_404(access.tenants(), slug=slug)


def require_role(access: Access, tenant: Tenant, minimum: str, doing: str):
    """Raise PermissionDenied unless ``access`` holds ``minimum`` in ``tenant`` (a write on an active tenant)."""
    if not access.has_role(tenant.id, minimum):
        role = access.role(tenant.id)
        raise PermissionDenied(
            f"{doing} needs the {minimum} role in {tenant.slug}; you are {role}." if role else f"{doing} is for platform staff."
        )
    if not access.is_staff and not tenant.is_active:
        raise PermissionDenied(f"{tenant.slug} is suspended: its data can be read, not changed. Ask the platform team.")


def require_staff(access: Access, doing: str):
    if not access.is_staff:
        raise PermissionDenied(f"{doing} is for platform staff.")
