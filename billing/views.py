"""Billing pages: the console's price book and spend overview; a tenant's spend, budget, forecast and statements."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.api.views import statement_csv
from billing.forms import BudgetForm, PriceForm
from billing.models import Budget, Notification, Price, Statement, UsageRecord
from billing.rating import month_start, to_cents
from billing.selectors import budget_forecast, budget_spent, local_tz, usage_summary
from billing.services import budget_set, price_set, statement_close
from ocenter.access import staff_required
from ocenter.charts import daily_lines, line_chart
from ocenter.errors import DomainError
from ocenter.lib.spreadsheet import csv_response
from tenants.access import Access, get_tenant_for, require_role
from tenants.models import Role, Tenant


def _month_spend(tenant_ids, now):
    start = month_start(now, local_tz())
    rows = UsageRecord.objects.filter(tenant_id__in=tenant_ids, start__gte=start).values("tenant_id").annotate(total=Sum("amount"))
    return {r["tenant_id"]: to_cents(r["total"]) for r in rows}


@staff_required
def console_billing(request):
    """Prices, and every tenant's spend this month against its budget."""
    form = PriceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            price_set(actor=request.user, **form.cleaned_data)
            messages.success(request, _("Price added."))
            return redirect("billing:console")
        except DomainError as exc:
            form.add_error(exc.field, exc.detail)
    now = timezone.now()
    tenants = list(Tenant.objects.order_by("slug"))
    spend = _month_spend([t.id for t in tenants], now)
    budgets = {b.tenant_id: b for b in Budget.objects.filter(project=None)}
    rows = []
    for tenant in tenants:
        budget = budgets.get(tenant.id)
        spent = spend.get(tenant.id, Decimal("0.00"))
        rows.append(
            {
                "tenant": tenant,
                "spent": spent,
                "budget": budget,
                "percent": float(spent / budget.amount * 100) if budget else None,
                "forecast": budget_forecast(budget, now) if budget else None,
            }
        )
        rows[-1]["over"] = _over(rows[-1]["forecast"], budget)
    last_month = month_start(month_start(now, local_tz()) - timedelta(days=1), local_tz())
    return render(
        request,
        "billing/console.html",
        {
            "form": form,
            "prices": Price.objects.all(),
            "rows": rows,
            "currency": settings.OCENTER_CURRENCY,
            "statements": Statement.objects.select_related("tenant")[:50],
            "last_month": last_month,
        },
    )


@staff_required
@require_POST
def close_month(request, slug):
    tenant = get_object_or_404(Tenant, slug=slug)
    now = timezone.now()
    month = month_start(month_start(now, local_tz()) - timedelta(days=1), local_tz())
    try:
        statement = statement_close(actor=request.user, tenant=tenant, month=month, now=now)
        messages.success(
            request,
            _("%(tenant)s %(month)s closed: %(total)s %(currency)s.")
            % {"tenant": tenant.slug, "month": f"{month:%Y-%m}", "total": statement.total, "currency": statement.currency},
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    return redirect("billing:console")


@login_required
def tenant_billing(request, slug):
    """A tenant's spend over the last 30 days, its budgets and forecast, statements and alerts."""
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    form = BudgetForm(request.POST or None, tenant=tenant)
    if request.method == "POST":
        require_role(access, tenant, Role.ADMIN, "Setting a budget")
        if form.is_valid():
            budget_set(actor=request.user, tenant=tenant, **form.cleaned_data)
            messages.success(request, _("Budget saved."))
            return redirect("billing:tenant", slug=tenant.slug)
    now = timezone.now()
    month_ago = now - timedelta(days=30)
    since = month_ago.date()
    records = UsageRecord.objects.filter(tenant=tenant, day__gte=since)
    by_day = usage_summary(records, ["day"])
    budgets = []
    for b in Budget.objects.filter(tenant=tenant).select_related("project"):
        spent = budget_spent(b, now)
        forecast = budget_forecast(b, now)
        budgets.append({"budget": b, "spent": to_cents(spent), "forecast": forecast, "over": _over(forecast, b),
                        "percent": float(spent / b.amount * 100)})  # fmt: skip
    return render(
        request,
        "billing/tenant.html",
        {
            "tenant": tenant,
            "by_day": by_day,
            "by_project": usage_summary(records, ["project", "pool", "model", "priority"]),
            "total_30d": to_cents(sum((row["amount"] for row in by_day), Decimal(0))),
            "budgets": budgets,
            "statements": Statement.objects.filter(tenant=tenant),
            "notifications": Notification.objects.filter(tenant=tenant)[:10],
            "form": form,
            "is_admin": access.has_role(tenant.id, Role.ADMIN),
            "currency": settings.OCENTER_CURRENCY,
            "chart": _bars(by_day, since),
            "by_project_chart": line_chart(
                daily_lines(usage_summary(records, ["day", "project"]), "project", 5, since=month_ago, until=now),
                since=month_ago,
                until=now,
            ),
        },
    )


def _over(forecast, budget) -> Decimal | None:
    """By how much the forecast passes the budget at the end of its period (None: it does not)."""
    return to_cents(forecast - budget.amount) if budget is not None and forecast is not None and forecast > budget.amount else None


# The spend chart's geometry, in its view box's units: the y axis's labels left of ``LEFT``, a slot a day, dates below.
CHART_WIDTH, CHART_LEFT, CHART_TOP, CHART_BASE, CHART_DAYS = 600, 48, 8, 110, 31


def _bars(by_day, since):
    """The spend chart, drawn by the server (no chart library): a bar a day from ``since`` to today, inside its box,
    with the y axis's top amount and a date every week on the x axis."""
    slot = (CHART_WIDTH - CHART_LEFT) / CHART_DAYS
    top = max((row["amount"] for row in by_day), default=Decimal(0)) or Decimal(1)
    bars = []
    for row in by_day:
        index = (row["day"] - since).days
        if 0 <= index < CHART_DAYS:
            h = int(row["amount"] / top * (CHART_BASE - CHART_TOP))
            bars.append({"x": round(CHART_LEFT + index * slot + 1, 1), "y": CHART_BASE - h, "width": round(slot - 2, 1), "height": h,
                         "day": row["day"], "amount": row["amount"]})  # fmt: skip
    dates = [{"x": round(CHART_LEFT + i * slot + slot / 2, 1), "day": since + timedelta(days=i)} for i in range(0, CHART_DAYS, 7)]
    return {"bars": bars, "dates": dates, "top": to_cents(top), "left": CHART_LEFT, "base": CHART_BASE, "right": CHART_WIDTH,
            "top_y": CHART_TOP}  # fmt: skip


@login_required
def statement_download(request, statement_id):
    statement = get_object_or_404(Access.of(request).scope(Statement.objects.select_related("tenant")), id=statement_id)
    return statement_csv(statement)


USAGE_CSV_DAYS = {"7": 7, "30": 30, "90": 90}


def _usage_csv(records, name: str, days: int):
    since = (timezone.now() - timedelta(days=days)).date()
    header = ["start", "end", "tenant", "project", "allocation", "pool", "model", "template", "class", "compute_units", "memory_mib",
              "seconds", f"amount_{settings.OCENTER_CURRENCY}"]  # fmt: skip
    records = records.filter(day__gte=since).select_related("tenant", "project").order_by("start", "id")
    rows = ([r.start, r.end, r.tenant.slug, r.project.slug, r.allocation_id, r.pool_name, r.accelerator_model, r.template,
             r.priority, r.compute_units, r.memory_mib, r.seconds, r.amount] for r in records.iterator(chunk_size=2000))  # fmt: skip
    return csv_response(f"{name}-usage-{days}d.csv", header, rows)


@login_required
def tenant_usage_csv(request, slug):
    """The tenant's usage records (the ledger) of the last ``?days=7|30|90`` (30), as CSV."""
    tenant = get_tenant_for(Access.of(request), slug)
    return _usage_csv(UsageRecord.objects.filter(tenant=tenant), tenant.slug, USAGE_CSV_DAYS.get(request.GET.get("days", ""), 30))


@staff_required
def usage_csv(request):
    """Every tenant's usage records of the last ``?days=7|30|90`` (30), as CSV."""
    return _usage_csv(UsageRecord.objects.all(), "oCenter", USAGE_CSV_DAYS.get(request.GET.get("days", ""), 30))
