"""The billing API: prices, usage, budgets, statements. A tenant reads only its own money."""

import csv
from datetime import datetime, time
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.api.serializers import BudgetSerializer, PriceSerializer, StatementCloseSerializer, StatementSerializer
from billing.filters import BudgetFilter, PriceFilter, StatementFilter, UsageFilter
from billing.models import Budget, Price, Statement, UsageRecord
from billing.rating import month_start
from billing.selectors import USAGE_GROUPS, usage_summary
from billing.services import budget_set, price_set, statement_close
from ocenter.lib.spreadsheet import cell
from tenants.access import Access, require_role, require_staff
from tenants.models import Role


def _members_only(access: Access):
    if not access.is_staff and not access.roles:
        raise PermissionDenied("Billing is visible to platform staff and to members of a tenant.")


class PriceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The price book: everyone with a tenant reads it; staff add prices (a change takes effect from a moment on)."""

    queryset = Price.objects.order_by("pool_name", "accelerator_model", "priority", "effective_from", "id")
    serializer_class = PriceSerializer
    filterset_class = PriceFilter

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        _members_only(Access.of(request))

    def create(self, request):
        require_staff(Access.of(request), "Setting prices")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        price = price_set(actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(price).data, status=status.HTTP_201_CREATED)


class UsageViewSet(viewsets.GenericViewSet):
    """Metered usage summed per the ``group_by`` fields (tenant, project, pool, model, priority, day)."""

    queryset = UsageRecord.objects.none()
    filterset_class = UsageFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        access = Access.of(self.request)
        _members_only(access)
        return access.scope(UsageRecord.objects.all())

    @extend_schema(
        parameters=[OpenApiParameter("group_by", str, description="comma-separated: " + ", ".join(USAGE_GROUPS))], responses={200: dict}
    )
    def list(self, request):
        groups = [g.strip() for g in request.query_params.get("group_by", "tenant,project,pool,model,priority,day").split(",") if g.strip()]
        unknown = [g for g in groups if g not in USAGE_GROUPS]
        if unknown:
            raise serializers.ValidationError({"group_by": [f"unknown group {', '.join(unknown)}; choose from {', '.join(USAGE_GROUPS)}."]})
        rows = usage_summary(self.filter_queryset(self.get_queryset()), groups)
        # Money and time as decimal strings, never floats.
        rows = [{k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()} for row in rows]
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(page)


class BudgetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Budgets with what is spent and the forecast; staff and tenant admins set them."""

    queryset = Budget.objects.none()
    serializer_class = BudgetSerializer
    filterset_class = BudgetFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return Access.of(self.request).scope(Budget.objects.select_related("tenant", "project").order_by("tenant__slug", "id"))

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        require_role(Access.of(request), data["tenant"], Role.ADMIN, "Setting a budget")
        budget = budget_set(actor=request.user, **data)
        return Response(self.get_serializer(budget).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, budget):
        require_role(Access.of(self.request), budget.tenant, Role.ADMIN, "Removing a budget")
        from ocenter.audit import audit_record

        audit_record(actor=self.request.user, action="budget.delete", obj=budget, tenant_id=budget.tenant_id)
        budget.delete()


class StatementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Closed monthly statements (immutable), as JSON or CSV; staff close a month."""

    queryset = Statement.objects.none()
    serializer_class = StatementSerializer
    filterset_class = StatementFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return Access.of(self.request).scope(Statement.objects.select_related("tenant").prefetch_related("lines").order_by("-month", "id"))

    @extend_schema(request=StatementCloseSerializer, responses={201: StatementSerializer})
    def create(self, request):
        require_staff(Access.of(request), "Closing a month")
        serializer = StatementCloseSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        day = serializer.validated_data["month"]
        month = month_start(datetime.combine(day, time(12), tzinfo=ZoneInfo(settings.TIME_ZONE)), ZoneInfo(settings.TIME_ZONE))
        statement = statement_close(actor=request.user, tenant=serializer.validated_data["tenant"], month=month)
        return Response(StatementSerializer(statement).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=True)
    def csv(self, request, pk=None):
        statement = self.get_object()
        return statement_csv(statement)


def statement_csv(statement: Statement) -> HttpResponse:
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow(["tenant", "month", "description", "project", "pool", "model", "class", "gpu_hours", f"amount_{statement.currency}"])
    for line in statement.lines.all():
        writer.writerow(
            cell(v)
            for v in [
                statement.tenant.slug,
                f"{statement.month:%Y-%m}",
                line.description,
                line.project_id or "",
                line.pool_name,
                line.accelerator_model,
                line.priority,
                line.gpu_hours,
                line.amount,
            ]
        )
    writer.writerow([cell(statement.tenant.slug), f"{statement.month:%Y-%m}", "total", "", "", "", "", "", statement.total])
    response = HttpResponse(out.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{statement.tenant.slug}-{statement.month:%Y-%m}.csv"'
    return response
