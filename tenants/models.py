"""Tenants, their projects and members, the quotas they are promised, and their API tokens."""

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Tenant(models.Model):
    """A company or department with its own members, quotas and bills."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["active", "suspended"]), name="tenant_status_valid"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Project(models.Model):
    """A piece of a tenant's work (a research group, a product), with its own share of the quota."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="projects")
    slug = models.SlugField(max_length=63)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="project_slug_unique_per_tenant")]

    def __str__(self):
        return f"{self.tenant.slug}/{self.slug}"


class Role(models.TextChoices):
    """A member's role in a tenant, from most to least power. Platform staff stand above all of them."""

    OWNER = "owner", _("owner")
    ADMIN = "admin", _("admin")
    MEMBER = "member", _("member")
    VIEWER = "viewer", _("viewer")

    @classmethod
    def rank(cls, role) -> int:
        """Higher is more power; 0 for no role."""
        return {cls.VIEWER: 1, cls.MEMBER: 2, cls.ADMIN: 3, cls.OWNER: 4}.get(role, 0)


class Membership(models.Model):
    """A user's role in one tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique"),
            models.CheckConstraint(condition=Q(role__in=["owner", "admin", "member", "viewer"]), name="membership_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} in {self.tenant.slug} ({self.role})"


class Quota(models.Model):
    """What a tenant (or one of its projects) is promised and allowed, in one scope.

    The scope is all pools, one pool, or one accelerator model (or a pool and a
    model). Pools are named, not referenced: tenants know nothing of pools. The
    guarantee is never taken away; usage between guarantee and limit is
    borrowed and can be reclaimed.
    """

    DIMENSIONS = ("compute_units", "memory_mib", "slices")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quotas")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="quotas")
    pool_name = models.SlugField(max_length=63, blank=True, help_text="empty: every pool")
    accelerator_model = models.CharField(max_length=64, blank=True, help_text="empty: every model")
    guarantee_compute_units = models.PositiveBigIntegerField(default=0)
    limit_compute_units = models.PositiveBigIntegerField(default=0)
    guarantee_memory_mib = models.PositiveBigIntegerField(default=0)
    limit_memory_mib = models.PositiveBigIntegerField(default=0)
    guarantee_slices = models.PositiveIntegerField(default=0)
    limit_slices = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant__slug", "project__slug", "pool_name", "accelerator_model", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "pool_name", "accelerator_model"],
                condition=Q(project__isnull=True),
                name="quota_unique_scope_per_tenant",
            ),
            models.UniqueConstraint(
                fields=["tenant", "project", "pool_name", "accelerator_model"],
                condition=Q(project__isnull=False),
                name="quota_unique_scope_per_project",
            ),
            models.CheckConstraint(
                condition=Q(limit_compute_units__gte=F("guarantee_compute_units")), name="quota_compute_limit_gte_guarantee"
            ),
            models.CheckConstraint(condition=Q(limit_memory_mib__gte=F("guarantee_memory_mib")), name="quota_memory_limit_gte_guarantee"),
            models.CheckConstraint(condition=Q(limit_slices__gte=F("guarantee_slices")), name="quota_slices_limit_gte_guarantee"),
        ]

    def __str__(self):
        return f"{self.tenant.slug}{'/' + self.project.slug if self.project_id else ''} · {self.scope_label}"

    @property
    def scope_label(self) -> str:
        parts = [gettext("pool %(name)s") % {"name": self.pool_name} if self.pool_name else gettext("all pools")]
        if self.accelerator_model:
            parts.append(self.accelerator_model)
        return ", ".join(parts)

    def amounts(self, kind: str) -> dict:
        """``{"compute_units": …, "memory_mib": …, "slices": …}`` of the guarantee or the limit."""
        return {d: getattr(self, f"{kind}_{d}") for d in self.DIMENSIONS}


class ApiToken(models.Model):
    """A bearer token for the northbound API, made by a user for one tenant (or, by staff, for the platform).

    Only a SHA-256 of the secret is kept; the prefix lets people recognise a
    token in lists. A token acts with its creator's current role in the
    tenant, capped by the role it was made with: never more.
    """

    PREFIX = "ocn"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # Null only for a platform token, which only staff can make.
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens")
    role = models.CharField(max_length=16, choices=Role.choices, blank=True, help_text="cap on the token's role")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        # The secret has 256 bits of entropy: a plain SHA-256 is enough, and
        # fast enough to check on every request.
        return hashlib.sha256(secret.encode()).hexdigest()


class Invitation(models.Model):
    """A tenant's admin asks someone, by username, to join with a role; it binds nobody until they accept.

    Whether the name is anyone's yet is not the inviter's to learn: the answer is the same either way. Only a
    SHA-256 of the link's secret is kept.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    username = models.CharField(max_length=150)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    secret_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.username} to {self.tenant.slug} as {self.role}"

    @property
    def open(self) -> bool:
        from django.utils import timezone

        return self.accepted_at is None and self.expires_at > timezone.now()
