"""Reads of money, shaped for pages and the API."""

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, DecimalField, Exists, F, OuterRef, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncHour
from django.utils import timezone

from billing.models import Budget, Price, UsageRecord
from billing.rating import HOUR, MIB_PER_GIB, UNITS_PER_GPU, hourly, month_start, next_month, to_cents
from ocenter.lib.rows import adapted, param
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU
from pools.models import Allocation, AllocationEvent, Slice


def local_tz():
    """The zone days and months are counted in (settings.TIME_ZONE)."""
    return ZoneInfo(settings.TIME_ZONE)


class PriceBook:
    """Every price, to look up the one in effect for a pool, model, class and template (blank: none) at a moment."""

    def __init__(self, prices=None):
        self.prices = list(prices if prices is not None else Price.objects.all())

    def at(self, pool_name: str, accelerator_model: str, priority: str, moment: datetime, template: str = "") -> Price | None:
        best = None
        for price in self.prices:
            if price.effective_from <= moment and price.matches(pool_name, accelerator_model, priority, template):
                key = (price.specificity, price.effective_from)
                if best is None or key > (best.specificity, best.effective_from):
                    best = price
        return best

    def changes(self, pool_name: str, accelerator_model: str, priority: str, template: str = "") -> list[datetime]:
        return [p.effective_from for p in self.prices if p.matches(pool_name, accelerator_model, priority, template)]


def hourly_price(
    book: PriceBook, pool_name: str, model: str, priority: str, compute_units: int, memory_mib: int, template: str = ""
) -> Decimal:
    """What one slice costs per hour now (0 when no price applies)."""
    price = book.at(pool_name, model, priority, timezone.now(), template)
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
    """What the budget's tenant (or project) spent in its period so far: its records, and what runs since they end."""
    start, end = budget_period(budget, now)
    records = UsageRecord.objects.filter(tenant_id=budget.tenant_id, start__gte=start)
    if end:
        records = records.filter(start__lt=end)
    if budget.project_id:
        records = records.filter(project_id=budget.project_id)
    closed = records.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    return closed + sum(unmetered([budget.tenant_id], now=now, since=start, project_id=budget.project_id).values(), Decimal(0))


# --- what runs past the ledger's end ----------------------------------------------
#
# The ledger holds closed pieces (at most an hour each, billing.services). What a running slice did since its
# watermark is priced when spend is read: its compute- and memory-seconds, summed by the database per tenant,
# pool, model, class and template, at the price in effect now. (Work that stopped, or a price that changed, since the last
# metering run is counted once that run writes it: within a minute.)


def _sqlite_epoch(moment: str) -> str:
    # Exact to the microsecond (julianday is not): whole seconds, plus the text's fraction ("YYYY-MM-DD HH:MM:SS.ffffff").
    return f"(CAST(strftime('%%s', {moment}) AS INTEGER) + COALESCE(CAST(substr({moment}, 20, 7) AS REAL), 0))"


_FROM = "COALESCE(m.metered_until, s.started_at)"
_SECONDS = {
    "postgresql": f"EXTRACT(EPOCH FROM %(now)s - GREATEST({_FROM}, %(since)s))",
    "sqlite": f"({_sqlite_epoch('%(now)s')} - {_sqlite_epoch(f'MAX({_FROM}, %(since)s)')})",
}
_UNMETERED_SQL = """
    SELECT a.tenant_id, p.name, g.model, a.priority, a.template, SUM(s.compute_units * {seconds}), SUM(s.memory_mib * {seconds})
      FROM pools_slice s JOIN pools_allocation a ON a.id = s.allocation_id
      JOIN pools_pool p ON p.id = s.pool_id JOIN pools_accelerator g ON g.id = s.accelerator_id
      LEFT JOIN billing_slicemeter m ON m.slice_id = s.id
     WHERE s.active AND a.state = 'running' AND s.started_at IS NOT NULL {tenants} {project}
       AND {start} < %(now)s
     GROUP BY a.tenant_id, p.name, g.model, a.priority, a.template"""


def unmetered(tenant_ids, *, now: datetime, since: datetime, project_id=None) -> dict:
    """``{tenant_id: Decimal}``: what these tenants' (None: every tenant's) running slices cost from their watermarks
    (or ``since``) to ``now``. One query."""
    tenant_key = Allocation._meta.get_field("tenant")
    tenant_ids = None if tenant_ids is None else list(tenant_ids)
    if tenant_ids == []:
        return {}
    params = {f"t{i}": param(tenant_key, t) for i, t in enumerate(tenant_ids or ())}
    params.update(now=adapted(now), since=adapted(since))
    project = ""
    if project_id:
        project, params["project"] = "AND a.project_id = %(project)s", param(Allocation._meta.get_field("project"), project_id)
    tenants = "" if tenant_ids is None else "AND a.tenant_id IN ({})".format(", ".join(f"%(t{i})s" for i in range(len(tenant_ids))))
    sql = _UNMETERED_SQL.format(seconds=_SECONDS[connection.vendor], start=_FROM, tenants=tenants, project=project)
    book, cost = PriceBook(), defaultdict(Decimal)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for tenant_id, pool_name, model, priority, template, unit_seconds, mib_seconds in cursor.fetchall():
            price = book.at(pool_name, model, priority, now, template)
            if price is not None:
                compute = Decimal(str(unit_seconds)) / UNITS_PER_GPU * price.compute_gpu_hour
                memory = Decimal(str(mib_seconds)) / MIB_PER_GIB * price.memory_gib_hour
                cost[tenant_key.to_python(tenant_id)] += (compute + memory) / HOUR
    return dict(cost)


def due_slices(book: PriceBook, now: datetime, tz):
    """Slices that may have a piece of the ledger closed since their watermark (a superset: metering decides exactly).

    Never metered; a step of its history since; a price change or a local
    midnight since; or an hour mark since. Most running slices are none of
    these on most runs, so metering does not read them.
    """
    changes = [p.effective_from for p in book.prices if p.effective_from <= now]
    cut = max([*changes, now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)])
    return (
        Slice.objects.filter(started_at__isnull=False, started_at__lt=now)
        .annotate(metered_until=F("meter__metered_until"))
        .alias(crossed=RawSQL(_HOUR_CROSSED[connection.vendor], [adapted(now)], output_field=BooleanField()))
        .filter(Q(metered_until__isnull=True) | Q(metered_until__lt=now))
        .filter(
            Q(metered_until__isnull=True)
            | Q(metered_until__lt=cut)
            | Q(allocation__ended_at__gt=F("metered_until"))
            | Q(Exists(AllocationEvent.objects.filter(allocation_id=OuterRef("allocation_id"), at__gt=OuterRef("metered_until"))))
            | Q(crossed=True)
        )
    )


# An hour mark of the slice (its start + k hours) in (watermark, now]; on SQLite with a margin (it counts in days).
_HOUR_CROSSED = {
    "postgresql": 'floor(EXTRACT(EPOCH FROM %s - "pools_slice"."started_at") / 3600) '
                  '> floor(EXTRACT(EPOCH FROM "billing_slicemeter"."metered_until" - "pools_slice"."started_at") / 3600)',
    "sqlite": 'CAST((julianday(%s) - julianday("pools_slice"."started_at")) * 24 + 1e-6 AS INTEGER) '
              '> CAST((julianday("billing_slicemeter"."metered_until") - julianday("pools_slice"."started_at")) * 24 - 1e-6 AS INTEGER)',
}  # fmt: skip


def burn_rate(*, tenant_id, project_id=None) -> Decimal:
    """What the work running now costs per hour, at the prices in effect now."""
    book = PriceBook()
    slices = Slice.objects.filter(
        active=True, started_at__isnull=False, allocation__state=Allocation.State.RUNNING, allocation__tenant_id=tenant_id
    ).select_related("allocation", "pool", "accelerator")
    if project_id:
        slices = slices.filter(allocation__project_id=project_id)
    return sum(
        (
            hourly_price(
                book, s.pool.name, s.accelerator.model, s.allocation.priority, s.compute_units, s.memory_mib, s.allocation.template
            )
            for s in slices
        ),
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
    now = timezone.now()
    start = month_start(now, local_tz())
    rows = UsageRecord.objects.filter(tenant_id__in=tenant_ids, start__gte=start).values("tenant_id").annotate(total=Sum("amount"))
    spent = defaultdict(Decimal, {r["tenant_id"]: r["total"] for r in rows})
    for tenant_id, cost in unmetered(tenant_ids, now=now, since=start).items():
        spent[tenant_id] += cost
    spent = {t: to_cents(v) for t, v in spent.items()}
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
    now = timezone.now()
    total = UsageRecord.objects.filter(day=timezone.localdate(now)).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    midnight = now.astimezone(local_tz()).replace(hour=0, minute=0, second=0, microsecond=0)
    return to_cents(total + sum(unmetered(None, now=now, since=midnight).values(), Decimal(0)))


def allocations_cost_since(since: dict, now: datetime) -> dict:
    """``{allocation_id: Decimal}``: what each allocation's running slices cost from its moment in ``since`` to ``now``, at today's prices.

    The answer to ``ocenter.seams.cost_since`` (the money an idle allocation spent while idle).
    """
    if not since:
        return {}
    book = PriceBook()
    per_hour = defaultdict(Decimal)
    slices = Slice.objects.filter(allocation_id__in=list(since), active=True).values_list(
        "allocation_id", "pool__name", "accelerator__model", "allocation__priority", "compute_units", "memory_mib", "allocation__template"
    )
    for allocation_id, pool_name, model, priority, units, mib, template in slices:
        per_hour[allocation_id] += hourly_price(book, pool_name, model, priority, units, mib, template)
    return {a: to_cents(per_hour[a] * Decimal(max(0.0, (now - at).total_seconds())) / 3600) for a, at in since.items()}


def allocated_by_hour(since: datetime, now: datetime) -> list[tuple[datetime, float]]:
    """Compute units handed out on average in each metered hour from ``since``: the ledger's unit-seconds of the hour over 3,600."""
    records = UsageRecord.objects.filter(day__gte=(since - timedelta(days=1)).date(), start__gte=since, start__lt=now)
    rows = records.annotate(hour=TruncHour("start")).values("hour").annotate(unit_seconds=Sum(F("seconds") * F("compute_units")))
    return [(row["hour"], float(row["unit_seconds"]) / 3600) for row in rows.order_by("hour")]
