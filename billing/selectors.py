"""Reads of money, shaped for pages and the API."""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import DecimalField, F, Sum
from django.utils import timezone

from billing.models import Budget, Price, UsageRecord
from billing.rating import hourly, month_start, next_month, to_cents
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.models import Allocation, Slice


def local_tz():
    """The zone days and months are counted in (settings.TIME_ZONE)."""
    return ZoneInfo(settings.TIME_ZONE)


class PriceBook:
    """Every price, to look up the one in effect for a pool, model and class at a moment."""

    def __init__(self, prices=None):
        self.prices = list(prices if prices is not None else Price.objects.all())

    def at(self, pool_name: str, accelerator_model: str, priority: str, moment: datetime) -> Price | None:
        best = None
        for price in self.prices:
            if price.effective_from <= moment and price.matches(pool_name, accelerator_model, priority):
                key = (price.specificity, price.effective_from)
                if best is None or key > (best.specificity, best.effective_from):
                    best = price
        return best

    def changes(self, pool_name: str, accelerator_model: str, priority: str) -> list[datetime]:
        return [p.effective_from for p in self.prices if p.matches(pool_name, accelerator_model, priority)]


def hourly_price(book: PriceBook, pool_name: str, model: str, priority: str, compute_units: int, memory_mib: int) -> Decimal:
    """What one slice costs per hour now (0 when no price applies)."""
    price = book.at(pool_name, model, priority, timezone.now())
    if price is None:
        return Decimal(0)
    return hourly(
        compute_units=compute_units, memory_mib=memory_mib, compute_gpu_hour=price.compute_gpu_hour, memory_gib_hour=price.memory_gib_hour
    )


def budget_period(budget: Budget, now: datetime) -> tuple[datetime, datetime | None]:
    """[start, end) of the budget's current period (no end for a fixed total)."""
    if budget.period == Budget.Period.TOTAL:
        return budget.starts_at or budget.created_at, None
    start = month_start(now, local_tz())
    return start, next_month(start)


def budget_spent(budget: Budget, now: datetime) -> Decimal:
    start, end = budget_period(budget, now)
    records = UsageRecord.objects.filter(tenant_id=budget.tenant_id, start__gte=start)
    if end:
        records = records.filter(start__lt=end)
    if budget.project_id:
        records = records.filter(project_id=budget.project_id)
    return records.aggregate(total=Sum("amount"))["total"] or Decimal(0)


def burn_rate(*, tenant_id, project_id=None) -> Decimal:
    """What the work running now costs per hour, at the prices in effect now."""
    book = PriceBook()
    slices = Slice.objects.filter(
        active=True, started_at__isnull=False, allocation__state=Allocation.State.RUNNING, allocation__tenant_id=tenant_id
    ).select_related("allocation", "pool", "accelerator")
    if project_id:
        slices = slices.filter(allocation__project_id=project_id)
    return sum(
        (hourly_price(book, s.pool.name, s.accelerator.model, s.allocation.priority, s.compute_units, s.memory_mib) for s in slices),
        Decimal(0),
    )


def budget_forecast(budget: Budget, now: datetime | None = None) -> Decimal:
    """Spend at the end of the period if the current burn rate holds (a fixed total: the spend so far)."""
    now = now or timezone.now()
    spent = budget_spent(budget, now)
    _, end = budget_period(budget, now)
    if end is None:
        return to_cents(spent)
    hours = Decimal((end - now).total_seconds()) / 3600
    return to_cents(spent + burn_rate(tenant_id=budget.tenant_id, project_id=budget.project_id) * hours)


USAGE_GROUPS = {
    "tenant": "tenant__slug",
    "project": "project__slug",
    "pool": "pool_name",
    "model": "accelerator_model",
    "priority": "priority",
    "day": "day",
}


def usage_summary(records, group_by: list[str]) -> list[dict]:
    """Usage summed by the named groups (tenant, project, pool, model, priority, day), with GPU-hours and money."""
    fields = [USAGE_GROUPS[g] for g in group_by]
    rows = (
        records.values(*fields)
        .annotate(
            unit_seconds=Sum(F("seconds") * F("compute_units"), output_field=DecimalField()),
            total=Sum("amount"),
            running_seconds=Sum("seconds"),
        )
        .order_by(*fields)
    )
    return [
        {
            **{g: row[USAGE_GROUPS[g]] for g in group_by},
            "seconds": row["running_seconds"].quantize(Decimal("0.000001")),
            "gpu_hours": (row["unit_seconds"] / COMPUTE_UNITS_PER_GPU / 3600).quantize(Decimal("0.0001")),
            "amount": to_cents(row["total"]),
        }
        for row in rows
    ]


def tenants_month_spend(tenant_ids) -> dict:
    """``{tenant_id: {"spent": …, "budget": Budget | None, "percent": …}}`` for this month (the answer to ocenter.seams.spend)."""
    start = month_start(timezone.now(), local_tz())
    rows = UsageRecord.objects.filter(tenant_id__in=tenant_ids, start__gte=start).values("tenant_id").annotate(total=Sum("amount"))
    spent = {r["tenant_id"]: to_cents(r["total"]) for r in rows}
    budgets = {b.tenant_id: b for b in Budget.objects.filter(tenant_id__in=tenant_ids, project=None)}
    result = {}
    for tenant_id in tenant_ids:
        amount, budget = spent.get(tenant_id, Decimal("0.00")), budgets.get(tenant_id)
        result[tenant_id] = {
            "spent": amount,
            "budget": budget,
            "currency": settings.OCENTER_CURRENCY,
            "percent": float(amount / budget.amount * 100) if budget else None,
        }
    return result


def spend_today() -> Decimal:
    """What every tenant together spent today (local day), to the cent."""
    total = UsageRecord.objects.filter(day=timezone.localdate()).aggregate(total=Sum("amount"))["total"]
    return to_cents(total or Decimal(0))


def allocations_cost_since(since: dict, now: datetime) -> dict:
    """``{allocation_id: Decimal}``: what each allocation's running slices cost from its moment in ``since`` to ``now``, at today's prices.

    The answer to ``ocenter.seams.cost_since`` (the money an idle allocation spent while idle).
    """
    if not since:
        return {}
    book = PriceBook()
    per_hour = defaultdict(Decimal)
    slices = Slice.objects.filter(allocation_id__in=list(since), active=True).values_list(
        "allocation_id", "pool__name", "accelerator__model", "allocation__priority", "compute_units", "memory_mib"
    )
    for allocation_id, pool_name, model, priority, units, mib in slices:
        per_hour[allocation_id] += hourly_price(book, pool_name, model, priority, units, mib)
    return {a: to_cents(per_hour[a] * Decimal(max(0.0, (now - at).total_seconds())) / 3600) for a, at in since.items()}
