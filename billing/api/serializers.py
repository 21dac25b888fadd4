from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from billing.models import Budget, Price, Statement, StatementLine
from billing.selectors import budget_forecast, budget_spent
from ocenter.api import ModelSerializer, Serializer
from tenants.api.serializers import TenantField
from tenants.models import Project


class PriceSerializer(ModelSerializer):
    currency = serializers.SerializerMethodField()

    class Meta:
        model = Price
        fields = [
            "id",
            "pool_name",
            "accelerator_model",
            "template",
            "priority",
            "compute_gpu_hour",
            "memory_gib_hour",
            "currency",
            "effective_from",
        ]
        read_only_fields = ["id"]
        validators = []

    def get_currency(self, price) -> str:
        return settings.OCENTER_CURRENCY


class BudgetSerializer(ModelSerializer):
    tenant = TenantField()
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all(), allow_null=True, required=False)
    spent = serializers.SerializerMethodField()
    forecast = serializers.SerializerMethodField()
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        default=[50, 80, 100],
        min_length=1,
        max_length=20,
        help_text="percentages of the amount that alert, at least one",
    )

    class Meta:
        model = Budget
        fields = [
            "id",
            "tenant",
            "project",
            "period",
            "amount",
            "thresholds",
            "action",
            "grace_seconds",
            "starts_at",
            "spent",
            "forecast",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        validators = []
        extra_kwargs = {"amount": {"min_value": Decimal("0.01")}}

    def get_fields(self):
        fields = super().get_fields()
        if "request" in self.context and "project" in fields and not fields["project"].read_only:
            from tenants.access import Access

            fields["project"].queryset = Access.of(self.context["request"]).scope(Project.objects.all())
        return fields

    def validate(self, data):
        tenant, project = data.get("tenant"), data.get("project")
        if project is not None and tenant is not None and project.tenant_id != tenant.id:
            raise serializers.ValidationError({"project": [f"project {project} is not in tenant {tenant.slug}."]})
        return data

    def get_spent(self, budget) -> str:
        return str(budget_spent(budget, timezone.now()).quantize(budget.amount))

    def get_forecast(self, budget) -> str:
        return str(budget_forecast(budget))


class StatementLineSerializer(ModelSerializer):
    class Meta:
        model = StatementLine
        fields = ["description", "project", "pool_name", "accelerator_model", "template", "priority", "gpu_hours", "amount"]


class StatementSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    lines = StatementLineSerializer(many=True, read_only=True)

    class Meta:
        model = Statement
        fields = ["id", "tenant", "month", "currency", "total", "closed_at", "lines"]


class StatementCloseSerializer(Serializer):
    tenant = TenantField()
    month = serializers.DateField(help_text="any day of the month to close, e.g. 2026-11-01")
