"""The shell around the apps' pages: home, health, the console overview, the request preview, the audit log."""

import json
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults

from billing.models import UsageRecord
from billing.rating import to_cents
from billing.selectors import PriceBook, allocated_by_hour, hourly_price, spend_today, usage_summary
from ocenter.access import staff_required
from ocenter.api_views import audit_entries_for
from ocenter.audit import audit_attempt
from ocenter.charts import daily_lines, line_chart
from ocenter.filters import AuditEntryFilter
from ocenter.lib.paging import CappedPaginator
from ocenter.lib.spreadsheet import csv_response
from ocenter.metrics import exposition, may_scrape
from ocenter.models import Preferences
from ocenter.preferences import preferences_set, time_zones
from pools import series
from pools.forms import AllocationRequestForm
from pools.models import AllocationEvent
from pools.selectors import capacity, fleet_totals, fragmentation, pool_utilization, pools_with_summary, queue_summary
from pools.services.allocations import allocation_preview
from tenants.access import Access, get_tenant_for
from tenants.models import Tenant


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if request.user.is_staff:
        return redirect("console-overview")
    return redirect("tenants:portal")


@staff_required
def overview(request):
    """The platform at a glance: capacity, fragmentation, queue, spend today, pool health, and a live feed."""
    events = AllocationEvent.objects.select_related("allocation__tenant").order_by("-at", "-id")[:20]
    return render(
        request,
        "console/overview.html",
        {
            "pools": pools_with_summary(),
            "by_pool": capacity("pool__name"),
            "by_model": capacity("model"),
            "fragmentation": fragmentation(),
            "queue": queue_summary(),
            "spend_today": spend_today(),
            "currency": settings.OCENTER_CURRENCY,
            "events": events,
        },
    )


@login_required
def request_preview(request, slug):
    """While a member types a request: would it fit quota and budget, what would it cost per hour, where would it land."""
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    form = AllocationRequestForm(request.GET, tenant=tenant)
    context = {"form": form, "currency": settings.OCENTER_CURRENCY}
    # What was typed but cannot be asked for (a field still empty is only not filled in yet).
    context["typed_wrong"] = [(form[name].label, errors) for name, errors in form.errors.items() if request.GET.get(name)]
    if form.is_valid():
        data = form.cleaned_data
        preview = allocation_preview(actor=request.user, tenant=tenant, **data)
        context["preview"] = preview
        if preview["placed"]:
            book, shape = PriceBook(), preview["allocation"]
            context["per_hour"] = to_cents(
                sum(
                    (
                        hourly_price(book, gpu.pool, gpu.model, shape.priority, shape.compute_units, shape.memory_mib, shape.template)
                        for gpu in preview["placed"]
                    ),
                    Decimal(0),
                )
            )
    return render(request, "pools/_fit.html", context)


@login_required
def audit_log(request):
    """The audit log: staff see every entry; tenant admins their tenants' (filter with ?tenant=slug)."""
    access = Access.of(request)
    entries = audit_entries_for(access)
    tenant = None
    if request.GET.get("tenant"):
        tenant = get_tenant_for(access, request.GET["tenant"])
        entries = entries.filter(tenant_id=tenant.id)
    filters = AuditEntryFilter(request.GET, queryset=entries)
    if request.GET.get("format") == "csv":
        return _audit_csv(filters.qs, tenant.slug if tenant else "oCenter")
    page = CappedPaginator(filters.qs, 50).get_page(request.GET.get("page"))
    tenants = {t.id: t for t in Tenant.objects.filter(id__in={e.tenant_id for e in page if e.tenant_id})}
    for entry in page:
        entry.tenant = tenants.get(entry.tenant_id)
    return render(request, "audit/audit_log.html", {"page": page, "tenant": tenant, "filters": filters})


def _audit_csv(entries, name: str):
    slugs = dict(Tenant.objects.values_list("id", "slug"))
    header = ["at", "actor", "tenant", "action", "object_type", "object_id", "object", "changes", "source_ip"]
    rows = ([e.at, e.actor_label, slugs.get(e.tenant_id, ""), e.action, e.object_type, e.object_id, e.object_repr,
             json.dumps(e.changes, ensure_ascii=False, default=str), e.source_ip] for e in entries.iterator(chunk_size=2000))  # fmt: skip
    return csv_response(f"{name}-audit.csv", header, rows)


def metrics(request):
    """Prometheus' scrape (ocenter/metrics.py says who may)."""
    allowed = may_scrape(request)
    if allowed is None:
        raise Http404("metrics are off: set OCENTER_METRICS_TOKEN or OCENTER_METRICS_ALLOW")
    if not allowed:
        refusal = "send 'Authorization: Bearer <OCENTER_METRICS_TOKEN>', or scrape from an address in OCENTER_METRICS_ALLOW\n"
        response = HttpResponse(refusal, status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="ocenter-metrics"'
        return response
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis():
    import redis

    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()


def _check_broker():
    from ocenter.celery import app

    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=1)


def readyz(request):
    """Readiness, each dependency on its own: the database, Redis (live updates), the Celery broker (jobs); 503 when one fails.

    A part the configuration does not use (the embedded default has no Redis and no broker) is "not used".
    """
    broker = not settings.CELERY_BROKER_URL.startswith("memory")
    checks = {"database": _check_database, "redis": _check_redis if settings.REDIS_URL else None,
              "broker": _check_broker if broker else None}  # fmt: skip
    answers, ready = {}, True
    for name, check in checks.items():
        if check is None:
            answers[name] = "not used"
            continue
        try:
            check()
            answers[name] = "ok"
        except Exception as exc:  # whatever stops it, said per dependency
            answers[name], ready = f"failing: {exc.__class__.__name__}: {exc}"[:300], False
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": answers}, status=200 if ready else 503)


def permission_denied(request, exception):
    """A page refused (403): audited, then oCenter's own page with a way back."""
    audit_attempt(request=request, action="access.refused", user=getattr(request, "user", None),
                  changes={"status": 403, "detail": str(exception)[:300]})  # fmt: skip
    return defaults.permission_denied(request, exception)


def healthz(request):
    """Liveness for a load balancer: the process answers and the database too (cheap: one SELECT; see readyz for the rest)."""
    _check_database()
    return JsonResponse({"status": "ok"})


TREND_SPANS = {"1": 1, "7": 7, "30": 30}
# Tenants drawn as lines of their own on the spend chart; the rest are summed as one.
SPEND_LINES = 5


@staff_required
def trends(request):
    """The fleet over time (``?days=1|7|30``): utilization its agents report, the share of compute handed out, and spend by tenant."""
    days = TREND_SPANS.get(request.GET.get("days", ""), 7)
    now = timezone.now()
    since = now - timedelta(days=days)
    total_units, _mib = fleet_totals()
    utilization = pool_utilization(None, since=since, now=now, resolution=series.HOUR if days > 1 else series.MINUTE)
    allocated = [(hour, 100 * units / total_units) for hour, units in allocated_by_hour(since, now)] if total_units else []
    spend = usage_summary(UsageRecord.objects.filter(day__gte=since.date()), ["day", "tenant"])
    return render(request, "console/trends.html", {
        "days": days, "spans": TREND_SPANS.values(), "currency": settings.OCENTER_CURRENCY,
        "utilization": line_chart({_("mean GPU utilization"): [(p["at"], p["utilization"]) for p in utilization]},
                                  since=since, until=now, top=100, unit="%"),
        "allocated": line_chart({_("compute handed out"): allocated}, since=since, until=now, top=100, unit="%"),
        "spend": line_chart(daily_lines(spend, "tenant", SPEND_LINES, since=since, until=now), since=since, until=now),
    })  # fmt: skip


class PreferencesForm(forms.Form):
    time_zone = forms.ChoiceField(
        label=gettext_lazy("Time zone"),
        required=False,
        help_text=gettext_lazy("Every time on oCenter’s pages is shown in it, and says so at the top."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [("", _("My browser’s")), *((zone, zone) for zone in time_zones())]


@login_required
def preferences(request):
    """A person's own preferences: their time zone (their browser's until they choose one)."""
    current = Preferences.objects.filter(user=request.user).values_list("time_zone", flat=True).first() or ""
    form = PreferencesForm(request.POST or None, initial={"time_zone": current})
    if request.method == "POST" and form.is_valid():
        preferences_set(actor=request.user, time_zone=form.cleaned_data["time_zone"], session=request.session)
        messages.success(request, _("Preferences saved."))
        return redirect("preferences")
    return render(request, "preferences.html", {"form": form})
