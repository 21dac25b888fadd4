"""FilterSets shared by the API and the pages."""

import django_filters

from tenants.models import ApiToken, Membership, Project, Quota, Tenant


class TenantFilter(django_filters.FilterSet):
    class Meta:
        model = Tenant
        fields = ["slug", "status"]


class ProjectFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = Project
        fields = ["tenant", "slug"]


class MembershipFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    username = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["tenant", "role", "username"]


class QuotaFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    project = django_filters.UUIDFilter(field_name="project_id")
    tenant_wide = django_filters.BooleanFilter(field_name="project", lookup_expr="isnull")

    class Meta:
        model = Quota
        fields = ["tenant", "project", "tenant_wide", "pool_name", "accelerator_model"]


class ApiTokenFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    active = django_filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull")

    class Meta:
        model = ApiToken
        fields = ["tenant", "active"]
