"""FilterSets shared by the API and the pages."""

import django_filters

from billing.models import Budget, Price, Statement, UsageRecord


class UsageFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")
    project = django_filters.UUIDFilter(field_name="project_id")
    pool = django_filters.CharFilter(field_name="pool_name")
    model = django_filters.CharFilter(field_name="accelerator_model")
    since = django_filters.DateFilter(field_name="day", lookup_expr="gte")
    until = django_filters.DateFilter(field_name="day", lookup_expr="lte")

    class Meta:
        model = UsageRecord
        fields = ["tenant", "project", "pool", "model", "template", "priority", "since", "until"]


class BudgetFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = Budget
        fields = ["tenant", "project", "period", "action"]


class StatementFilter(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug")

    class Meta:
        model = Statement
        fields = ["tenant", "month"]


class PriceFilter(django_filters.FilterSet):
    class Meta:
        model = Price
        fields = ["pool_name", "accelerator_model", "template", "priority"]
