"""The shell around the apps' pages: home, health, the console overview, the request preview, the audit log."""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render

from billing.rating import to_cents
from billing.selectors import PriceBook, hourly_price, spend_today
from ocenter.access import staff_required
from ocenter.api_views import audit_entries_for
from ocenter.filters import AuditEntryFilter
from ocenter.lib.paging import CappedPaginator
from pools.forms import AllocationRequestForm
from pools.models import AllocationEvent
from pools.selectors import capacity, fragmentation, pools_with_summary, queue_summary
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
            book = PriceBook()
            context["per_hour"] = to_cents(
                sum(
                    (
                        hourly_price(book, gpu.pool, gpu.model, data["priority"], data["compute_units"], data["memory_mib"])
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
    page = CappedPaginator(filters.qs, 50).get_page(request.GET.get("page"))
    tenants = {t.id: t for t in Tenant.objects.filter(id__in={e.tenant_id for e in page if e.tenant_id})}
    for entry in page:
        entry.tenant = tenants.get(entry.tenant_id)
    return render(request, "audit/audit_log.html", {"page": page, "tenant": tenant, "filters": filters})


def healthz(request):
    """Liveness for a load balancer: the process answers and the database too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
