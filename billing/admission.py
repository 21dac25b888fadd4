"""The budget admission check, named in settings.OCENTER_ADMISSION_CHECKS."""

from decimal import Decimal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from billing.models import Budget
from billing.rating import hourly, to_cents
from billing.selectors import PriceBook, budget_spent
from ocenter.admission import AdmissionRequest
from ocenter.errors import Refused


def budget_check(request: AdmissionRequest):
    """Refuse new work under a hard budget that is spent, or that the request's cost over its lease would overrun."""
    budgets = (
        Budget.objects.filter(tenant_id=request.tenant_id)
        .filter(Q(project__isnull=True) | Q(project_id=request.project_id))
        .exclude(action=Budget.Action.NOTIFY)
        .select_related("tenant", "project")
    )
    now = timezone.now()
    book = None
    for budget in budgets:
        spent = budget_spent(budget, now)
        if spent >= budget.amount:
            raise Refused(
                f"budget {budget} is spent: {to_cents(spent)} of {budget.amount} {settings.OCENTER_CURRENCY}; "
                "ask an admin to raise it, or wait for the next period",
                code="budget_exhausted",
                budget=str(budget.id),
                limit=str(budget.amount),
                used=str(to_cents(spent)),
            )
        if request.lease_seconds:
            book = book or PriceBook()
            per_hour = Decimal(0)
            for ask in request.slices:
                price = book.at(ask.pool_name, ask.accelerator_model, request.priority, now)
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
                    f"over its lease this request would cost {cost} {settings.OCENTER_CURRENCY}, and budget {budget} "
                    f"has {to_cents(budget.amount - spent)} left; ask for a shorter lease or fewer slices",
                    code="budget_would_overrun",
                    budget=str(budget.id),
                    limit=str(budget.amount),
                    used=str(to_cents(spent)),
                    asked=str(cost),
                )
