"""FilterSets shared by the API and the pages."""

import django_filters

from pools.models import Accelerator, Allocation, Pool


class PoolFilter(django_filters.FilterSet):
    class Meta:
        model = Pool
        fields = ["name", "region", "status"]


class AcceleratorFilter(django_filters.FilterSet):
    pool = django_filters.CharFilter(field_name="pool__name")
    node = django_filters.CharFilter(field_name="node__name")
    present = django_filters.BooleanFilter(field_name="gone_at", lookup_expr="isnull")

    class Meta:
        model = Accelerator
        fields = ["pool", "node", "vendor", "model", "health", "present"]


class AllocationFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    project = django_filters.UUIDFilter(field_name="project_id")
    pool = django_filters.CharFilter(field_name="slices__pool__name", distinct=True)
    array = django_filters.UUIDFilter(field_name="array_id", help_text="the members of one job array")

    class Meta:
        model = Allocation
        fields = ["tenant", "project", "pool", "state", "priority", "array"]
