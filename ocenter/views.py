"""The shell around the apps' pages: home, health, the audit log."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render

from ocenter.api_views import audit_entries_for
from ocenter.filters import AuditEntryFilter
from tenants.access import Access, get_tenant_for
from tenants.models import Tenant


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if request.user.is_staff:
        return redirect("pools:list")
    return redirect("tenants:portal")


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
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    tenants = {t.id: t for t in Tenant.objects.filter(id__in={e.tenant_id for e in page if e.tenant_id})}
    for entry in page:
        entry.tenant = tenants.get(entry.tenant_id)
    return render(request, "audit/audit_log.html", {"page": page, "tenant": tenant, "filters": filters})


def healthz(request):
    """Liveness for a load balancer: the process answers and the database too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
