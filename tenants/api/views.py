"""
The northbound API for tenants, projects, members, quotas and tokens.

Reads are narrowed to the tenants the caller reaches, so another tenant's
objects are 404; writes check the caller's role in the object's tenant (403).
"""

from django.db.models import ProtectedError, Q
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ocenter.errors import Conflict
from tenants import services
from tenants.access import Access, require_role, require_staff
from tenants.api.serializers import (
    ApiTokenSerializer,
    InvitationSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    NewApiTokenSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    QuotaSerializer,
    QuotaUpdateSerializer,
    TenantSerializer,
)
from tenants.authentication import TokenExchangeThrottle
from tenants.filters import ApiTokenFilter, MembershipFilter, ProjectFilter, QuotaFilter, TenantFilter
from tenants.models import ApiToken, Invitation, Membership, Project, Quota, Role, Tenant
from tenants.selectors import quotas_with_usage


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Lists and lookups narrowed to the caller's tenants."""

    tenant_field = "tenant"

    @property
    def access(self) -> Access:
        return Access.of(self.request)

    def get_queryset(self):
        return self.access.scope(super().get_queryset(), field=self.tenant_field)


class TenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Tenants: staff create them and change their status; an owner may rename its own."""

    queryset = Tenant.objects.order_by("slug", "id")
    serializer_class = TenantSerializer
    filterset_class = TenantFilter
    tenant_field = "id"
    ordering_fields = ["slug", "created_at"]

    def create(self, request):
        require_staff(self.access, "Creating a tenant")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = services.tenant_create(actor=request.user, slug=data["slug"], name=data["name"])
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        tenant = self.get_object()
        serializer = self.get_serializer(tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = {k: v for k, v in serializer.validated_data.items() if k in ("name", "status")}
        if "slug" in serializer.validated_data and serializer.validated_data["slug"] != tenant.slug:
            raise serializers.ValidationError({"slug": ["a tenant's slug cannot change."]})
        if "status" in fields:
            require_staff(self.access, "Suspending or reactivating a tenant")
        require_role(self.access, tenant, Role.OWNER, "Renaming a tenant")
        tenant = services.tenant_update(actor=request.user, tenant=tenant, **fields)
        return Response(TenantSerializer(tenant).data)


class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Projects of a tenant: admins and owners manage them; every member reads them."""

    queryset = Project.objects.select_related("tenant").order_by("tenant__slug", "slug", "id")
    serializer_class = ProjectSerializer
    filterset_class = ProjectFilter

    def get_serializer_class(self):
        return ProjectUpdateSerializer if self.action == "partial_update" else ProjectSerializer

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require_role(self.access, data["tenant"], Role.ADMIN, "Creating a project")
        project = services.project_create(actor=request.user, **data)
        return Response(ProjectSerializer(project, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        project = self.get_object()
        require_role(self.access, project.tenant, Role.ADMIN, "Changing a project")
        serializer = self.get_serializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(actor=request.user, project=project, **serializer.validated_data)
        return Response(self.get_serializer(project).data)

    def destroy(self, request, pk=None):
        project = self.get_object()
        require_role(self.access, project.tenant, Role.ADMIN, "Deleting a project")
        try:
            services.project_delete(actor=request.user, project=project)
        except ProtectedError:
            raise Conflict(f"project {project} still has allocations or bills; it cannot be deleted") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


def _check_can_grant(access: Access, tenant: Tenant, role: str, current: str | None = None):
    """Admins manage members and admins; only owners (and staff) grant or take away ownership."""
    require_role(access, tenant, Role.ADMIN, "Managing members")
    if Role.OWNER in (role, current):
        require_role(access, tenant, Role.OWNER, "Granting or changing an owner")


class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Who belongs to a tenant, with what role."""

    queryset = Membership.objects.select_related("tenant", "user").order_by("tenant__slug", "user__username", "id")
    serializer_class = MembershipSerializer
    filterset_class = MembershipFilter

    def get_serializer_class(self):
        return MembershipRoleSerializer if self.action in ("partial_update", "retrieve", "list") else MembershipSerializer

    def create(self, request):
        """Add someone directly (platform staff only): a tenant's admins invite (``POST /api/v1/invitations``)."""
        require_staff(self.access, "Adding a member directly (tenant admins invite: POST /api/v1/invitations)")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _check_can_grant(self.access, data["tenant"], data["role"])
        membership, generated = services.membership_add(
            actor=request.user,
            tenant=data["tenant"],
            username=data["user"]["username"],
            email=data.get("email", ""),
            role=data["role"],
            password=data.get("password", ""),
        )
        body = MembershipRoleSerializer(membership).data
        if generated:
            body["initial_password"] = generated  # shown once
        return Response(body, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        membership = self.get_object()
        serializer = self.get_serializer(membership, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)
        _check_can_grant(self.access, membership.tenant, role, membership.role)
        membership = services.membership_set_role(actor=request.user, membership=membership, role=role)
        return Response(MembershipRoleSerializer(membership).data)

    def destroy(self, request, pk=None):
        membership = self.get_object()
        _check_can_grant(self.access, membership.tenant, membership.role, membership.role)
        services.membership_remove(actor=request.user, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class QuotaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Quotas with what is held under them. Staff set a tenant's; its admins divide it among projects."""

    queryset = Quota.objects.select_related("tenant", "project").order_by(
        "tenant__slug", "project__slug", "pool_name", "accelerator_model", "id"
    )
    serializer_class = QuotaSerializer
    filterset_class = QuotaFilter

    def get_serializer_class(self):
        return QuotaUpdateSerializer if self.action == "partial_update" else QuotaSerializer

    def _with_usage(self, quotas):
        return {u.quota.id: u for u in quotas_with_usage(quotas)}

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "usage": self._with_usage(page)}
        return self.get_paginated_response(QuotaSerializer(page, many=True, context=context).data)

    def retrieve(self, request, pk=None):
        quota = self.get_object()
        context = {**self.get_serializer_context(), "usage": self._with_usage([quota])}
        return Response(QuotaSerializer(quota, context=context).data)

    def _require(self, tenant, project):
        if project is None:
            require_staff(self.access, "Setting a tenant's quota")
        else:
            require_role(self.access, tenant, Role.ADMIN, "Dividing the quota among projects")

    @extend_schema(description="Create the quota for a scope, or change it if one exists (an upsert by tenant, project, pool and model).")
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        self._require(data["tenant"], data.get("project"))
        quota = services.quota_set(actor=request.user, project=data.pop("project", None), **data)
        context = {**self.get_serializer_context(), "usage": self._with_usage([quota])}
        return Response(QuotaSerializer(quota, context=context).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=QuotaUpdateSerializer, responses=QuotaSerializer)
    def partial_update(self, request, pk=None):
        quota = self.get_object()
        self._require(quota.tenant, quota.project)
        serializer = self.get_serializer(quota, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        quota = services.quota_set(
            actor=request.user,
            tenant=quota.tenant,
            project=quota.project,
            pool_name=quota.pool_name,
            accelerator_model=quota.accelerator_model,
            **serializer.validated_data,
        )
        context = {**self.get_serializer_context(), "usage": self._with_usage([quota])}
        return Response(QuotaSerializer(quota, context=context).data)

    def destroy(self, request, pk=None):
        quota = self.get_object()
        self._require(quota.tenant, quota.project)
        services.quota_delete(actor=request.user, quota=quota)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """API tokens: everyone manages its own; a tenant's admins see and revoke the tenant's."""

    queryset = ApiToken.objects.select_related("tenant", "user").order_by("-created_at", "id")
    serializer_class = ApiTokenSerializer
    filterset_class = ApiTokenFilter

    def get_throttles(self):
        throttles = super().get_throttles()
        return [*throttles, TokenExchangeThrottle()] if self.action == "create" else throttles

    def get_queryset(self):
        tokens = ApiToken.objects.select_related("tenant", "user").order_by("-created_at", "id")
        access = self.access
        if access.is_staff:
            return tokens
        admin_of = [tid for tid, role in access.roles.items() if Role.rank(role) >= Role.rank(Role.ADMIN)]
        mine = tokens.filter(user=self.request.user)
        if access.token is not None:
            mine = mine.filter(tenant_id=access.token.tenant_id)
        return (mine | tokens.filter(tenant_id__in=admin_of)).distinct()

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant, role = data.get("tenant"), data.get("role", "")
        access = self.access
        if tenant is None:
            require_staff(access, "A platform token (one with no tenant)")
        else:
            require_role(access, tenant, Role.VIEWER, "Creating a token")
            current = access.role(tenant.id)
            if role and current != "staff" and Role.rank(role) > Role.rank(current):
                raise serializers.ValidationError({"role": [f"a token cannot act above your own role ({current})."]})
        token, secret = services.token_create(
            actor=request.user,
            user=request.user,
            tenant=tenant,
            name=data["name"],
            role=role,
            expires_at=data.get("expires_at"),
        )
        body = NewApiTokenSerializer(token, context=self.get_serializer_context()).data
        body["token"] = secret
        return Response(body, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = self.get_object()
        if token.user_id != request.user.id:
            if token.tenant is None:
                require_staff(self.access, "Revoking a platform token")
            else:
                require_role(self.access, token.tenant, Role.ADMIN, "Revoking another member's token")
        token = services.token_revoke(actor=request.user, token=token)
        return Response(ApiTokenSerializer(token, context=self.get_serializer_context()).data)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantScopedViewSet):
    """Invitations to join a tenant: its admins send them (by username; nothing says whether the name is anyone's),
    the person invited accepts. Listed: your tenants' (as admin), and those addressed to you."""

    queryset = Invitation.objects.select_related("tenant").order_by("-created_at", "id")
    serializer_class = InvitationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        access = self.access
        invitations = Invitation.objects.select_related("tenant").order_by("-created_at", "id")
        if access.is_staff:
            return invitations
        admin_of = [tid for tid, role in access.roles.items() if Role.rank(role) >= Role.rank(Role.ADMIN)]
        return invitations.filter(Q(tenant_id__in=admin_of) | Q(username__iexact=self.request.user.get_username()))

    @extend_schema(responses={201: InvitationSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        role = data.get("role", Role.MEMBER)  # the model's default, which the serializer leaves out when none is sent
        _check_can_grant(self.access, data["tenant"], role)
        invitation, secret = services.invitation_create(actor=request.user, tenant=data["tenant"], username=data["username"], role=role)
        body = InvitationSerializer(invitation).data
        body["accept_url"] = request.build_absolute_uri(reverse("tenants:invitation", args=[secret]))  # shown once: send it to them
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=MembershipRoleSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Join: the person the invitation names, signed in."""
        membership = services.invitation_accept(user=request.user, invitation=self.get_object())
        return Response(MembershipRoleSerializer(membership).data)
