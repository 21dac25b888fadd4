"""The budget admission check, named in settings.OCENTER_ADMISSION_CHECKS."""

from decimal import Decimal
from functools import cache

from django.conf import settings
from django.utils import timezone

from billing.models import Budget
from billing.rating import hourly, to_cents
from billing.selectors import PriceBook, budget_spent
from ocenter import reasons
from ocenter.admission import AdmissionRequest
from ocenter.errors import Refused
from ocenter.lib.rows import columns, fetch, instance, param
from tenants.models import Project, Tenant


@cache
def _hard_budgets_sql() -> str:
    return (
        f"SELECT {columns(Budget, 'b')}, {columns(Tenant, 't', 'tenant__')}, {columns(Project, 'p', 'project__')} FROM billing_budget b "
        "JOIN tenants_tenant t ON t.id = b.tenant_id LEFT JOIN tenants_project p ON p.id = b.project_id "
        f"WHERE b.tenant_id = %s AND (b.project_id IS NULL OR b.project_id = %s) AND b.action <> '{Budget.Action.NOTIFY}'"
    )


def _hard_budgets(request: AdmissionRequest) -> list[Budget]:
    """The tenant's and the project's budgets that act at their limit (written out: every request reads them)."""
    rows = fetch(_hard_budgets_sql(), [param(Tenant._meta.pk, request.tenant_id), param(Project._meta.pk, request.project_id)])
    return [
        instance(
            Budget,
            row,
            tenant=instance(Tenant, row, "tenant__"),
            project=instance(Project, row, "project__") if row["project_id"] else None,
        )
        for row in rows
    ]


def budget_check(request: AdmissionRequest):
    """Refuse new work under a hard budget that is spent, or that the request's cost over its lease would overrun."""
    budgets = _hard_budgets(request)
    now = timezone.now()
    book = None
    for budget in budgets:
        spent = budget_spent(budget, now)
        if spent >= budget.amount:
            raise Refused(
                reasons.BUDGET_SPENT
                % {"budget": budget, "spent": to_cents(spent), "amount": budget.amount, "currency": settings.OCENTER_CURRENCY},
                code="budget_exhausted",
                budget=str(budget.id),
                limit=str(budget.amount),
                used=str(to_cents(spent)),
            )
        if request.lease_seconds:
            book = book or PriceBook()
            per_hour = Decimal(0)
            for ask in request.slices:
                price = book.at(ask.pool_name, ask.accelerator_model, request.priority, now, ask.template)
                if price:
                    per_hour += hourly(
                        compute_units=ask.compute_units,
                        memory_mib=ask.memory_mib,
                        compute_gpu_hour=price.compute_gpu_hour,
                        memory_gib_hour=price.memory_gib_hour,
                    )
            cost = to_cents(per_hour * Decimal(request.lease_seconds) / 3600)
            if spent + cost > budget.amount:
                raise Refused(
                    reasons.BUDGET_OVERRUN
                    % {"cost": cost, "currency": settings.OCENTER_CURRENCY, "budget": budget, "left": to_cents(budget.amount - spent)},
                    code="budget_would_overrun",
                    budget=str(budget.id),
                    limit=str(budget.amount),
                    used=str(to_cents(spent)),
                    asked=str(cost),
                )
