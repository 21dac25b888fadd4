"""Pages for pools (console, staff only) and allocations (console and portal)."""

import json
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Min, Sum
from django.forms.models import model_to_dict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ocenter.access import staff_required
from ocenter.charts import line_chart
from ocenter.errors import DomainError
from ocenter.lib.paging import CappedPaginator
from ocenter.lib.spreadsheet import csv_response
from ocenter.seams import seams
from pools.agent_client import AgentClient, AgentError
from pools.diagnosis import blockers
from pools.filters import AllocationFilter
from pools.forms import AllocationRequestForm, IdlePolicyForm, PoolRegisterForm
from pools.models import Allocation, IdlePolicy, Pool, Slice
from pools.selectors import (
    allocation_usage,
    allocations_activity,
    allocations_for,
    estimated_starts,
    heatmap,
    idle_policy_for,
    pool_nodes,
    pool_templates,
    pools_with_summary,
    queue_order,
    queue_positions,
    usage_resolution,
)
from pools.services.allocations import allocation_preempt, allocation_release, allocation_request
from pools.services.idle import idle_policy_clear, idle_policy_set
from pools.services.pools import pool_register, pool_set_draining
from pools.services.sync import pool_sync
from tenants.access import Access, get_tenant_for, require_role
from tenants.models import Role, Tenant
from tenants.selectors import month_spend


def _get_pool_for_staff(pool_id) -> Pool:
    return get_object_or_404(Pool, id=pool_id)


@staff_required
def pool_list(request):
    return render(request, "pools/pool_list.html", {"pools": pools_with_summary()})


@staff_required
def pool_detail(request, pool_id):
    """A pool's nodes as a grid of GPUs: each with its slices (who holds what) and, when the agent answers, its utilization."""
    pool = pools_with_summary([_get_pool_for_staff(pool_id)])[0]
    nodes = pool_nodes(pool)
    slices = defaultdict(list)
    for s in Slice.objects.filter(pool=pool, active=True).select_related("allocation__tenant"):
        slices[s.accelerator_id].append(s)
    try:
        figures = {g["uuid"]: g for g in AgentClient.for_pool(pool).metrics().get("accelerators", [])}
    except AgentError:
        figures = {}
    for node in nodes:
        for gpu in node.accelerators.all():
            gpu.held = slices.get(gpu.id, [])
            gpu.figures = figures.get(gpu.uuid)
    context = {"pool": pool, "nodes": nodes, "templates": pool_templates(nodes), "live_metrics": bool(figures)}
    return render(request, "pools/pool_detail.html", context)


@staff_required
@never_cache
def pool_new(request):
    form = PoolRegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        pool, token = pool_register(actor=request.user, **form.cleaned_data)
        generated = not form.cleaned_data["token"]
        # The token is on this page only: it is not stored in the clear anywhere.
        return render(request, "pools/pool_token.html", {"pool": pool, "token": token if generated else None})
    return render(request, "pools/pool_new.html", {"form": form})


@staff_required
@require_POST
def pool_sync_now(request, pool_id):
    pool = pool_sync(pool_id=_get_pool_for_staff(pool_id).id)
    messages.info(request, _("Synced %(pool)s: %(status)s.") % {"pool": pool.name, "status": pool.get_status_display()})
    return redirect("pools:detail", pool_id=pool.id)


def _allocations_csv(allocations, name: str):
    """Every allocation of the list as filtered (not only the page), newest first."""
    rows = (
        [a.id, a.tenant.slug, a.project.slug, a.state, a.priority, a.count, a.compute_units, a.memory_mib, a.accelerator_model,
         a.pool_name, a.created_at, a.started_at, a.ended_at, a.reason, json.dumps(a.labels, ensure_ascii=False)]
        for a in allocations.order_by("-created_at", "id").iterator(chunk_size=2000)
    )  # fmt: skip
    header = ["id", "tenant", "project", "state", "class", "count", "compute_units", "memory_mib", "model", "pool", "created_at",
              "started_at", "ended_at", "reason", "labels"]  # fmt: skip
    return csv_response(f"{name}-allocations.csv", header, rows)


def _allocation_page(request, allocations, *, tenant=None, form=None):
    if request.GET.get("format") == "csv":
        return _allocations_csv(allocations, tenant.slug if tenant else "oCenter")
    tenant_spend = month_spend([tenant.id]).get(tenant.id) if tenant else None
    page = CappedPaginator(allocations.prefetch_related("slices__pool").order_by("-created_at", "id"), 50).get_page(request.GET.get("page"))
    positions = queue_positions(a.id for a in page if a.state == Allocation.State.QUEUED)
    activity = allocations_activity(page)
    for allocation in page:
        allocation.position = positions.get(allocation.id)
        allocation.activity = activity[allocation.id]
    return render(
        request,
        "pools/allocation_list.html",
        {
            "page": page,
            "tenant": tenant,
            "form": form,
            "show_tenant": tenant is None,
            "tenant_spend": tenant_spend,
            "states": Allocation.State.choices,
            "state": request.GET.get("state", ""),
            "filtered": any(request.GET.get(name) for name in ("state", "priority", "pool", "tenant", "project")),
            "priorities": Allocation.Priority.choices,
            "pools": Pool.objects.values_list("name", flat=True),
            "currency": settings.OCENTER_CURRENCY,
        },
    )


@staff_required
def allocation_list(request):
    """Every allocation, newest first, filtered as the API filters (tenant, project, pool, state, priority)."""
    allocations = AllocationFilter(request.GET, queryset=Allocation.objects.select_related("tenant", "project")).qs
    return _allocation_page(request, allocations)


@login_required
def tenant_allocations(request, slug):
    """A tenant's allocations and the form to ask for more."""
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    form = AllocationRequestForm(request.POST or None, tenant=tenant)
    if request.method == "POST":
        require_role(access, tenant, Role.MEMBER, "Requesting GPU slices")
        if form.is_valid():
            data = form.cleaned_data
            try:
                allocation, _created = allocation_request(actor=request.user, tenant=tenant, **data)
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
            else:
                done = _("Allocation %(id)s is %(state)s.") % {"id": str(allocation.id)[:8], "state": allocation.get_state_display()}
                if request.htmx:
                    # The row arrives over the websocket; the form comes back fresh.
                    fresh = AllocationRequestForm(tenant=tenant)
                    return render(request, "pools/_request_form.html", {"form": fresh, "tenant": tenant, "done": done})
                messages.success(request, done)
                return redirect("pools:tenant_allocations", slug=tenant.slug)
        if request.htmx:
            return render(request, "pools/_request_form.html", {"form": form, "tenant": tenant})
    allocations = AllocationFilter(request.GET, queryset=allocations_for(access).filter(tenant=tenant)).qs
    return _allocation_page(request, allocations, tenant=tenant, form=form)


@login_required
@require_POST
def allocation_release_view(request, allocation_id):
    access = Access.of(request)
    allocation = get_object_or_404(allocations_for(access), id=allocation_id)
    require_role(access, allocation.tenant, Role.MEMBER, "Releasing GPU slices")
    allocation = allocation_release(actor=request.user, allocation=allocation)
    if request.htmx:
        return render(request, "pools/_allocation_row.html", {"a": allocation, "show_tenant": access.is_staff})
    messages.success(
        request, _("Allocation %(id)s is %(state)s.") % {"id": str(allocation.id)[:8], "state": allocation.get_state_display()}
    )
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("pools:tenant_allocations", slug=allocation.tenant.slug)


@staff_required
@require_POST
def pool_drain(request, pool_id):
    """Drain or undrain a pool (``node`` in the form: one node of it)."""
    pool = _get_pool_for_staff(pool_id)
    node = get_object_or_404(pool.nodes, id=request.POST["node"]) if request.POST.get("node") else None
    draining = request.POST.get("draining") == "1"
    pool_set_draining(actor=request.user, pool=pool, node=node, draining=draining)
    what = f"{pool.name}/{node.name}" if node else pool.name
    messages.success(
        request, (_("%(what)s is draining: no new placements.") if draining else _("%(what)s takes new placements again.")) % {"what": what}
    )
    return redirect("pools:detail", pool_id=pool.id)


@staff_required
@require_POST
def allocation_preempt_view(request, allocation_id):
    allocation = get_object_or_404(Allocation, id=allocation_id)
    try:
        allocation = allocation_preempt(actor=request.user, allocation=allocation)
    except DomainError as exc:
        messages.error(request, exc.detail)
    if request.htmx:
        return render(request, "pools/_allocation_row.html", {"a": allocation, "show_tenant": True})
    return redirect("pools:allocations")


@staff_required
def idle_policies(request):
    """Staff set the platform's idle policy and tenants' own; every idle allocation is listed with what it spent idle."""
    form = IdlePolicyForm(request.POST or None, initial={**model_to_dict(idle_policy_for(None)), "tenant": ""})
    if request.method == "POST":
        if request.POST.get("clear"):
            tenant = get_object_or_404(Tenant, slug=request.POST["clear"])
            idle_policy_clear(actor=request.user, tenant=tenant)
            messages.success(request, _("%(tenant)s follows the platform's idle policy again.") % {"tenant": tenant.slug})
            return redirect("pools:idle")
        if form.is_valid():
            data = dict(form.cleaned_data)
            idle_policy_set(actor=request.user, **data)
            messages.success(request, _("Idle policy saved."))
            return redirect("pools:idle")
    return render(request, "pools/idle.html", {
        "form": form, "platform": idle_policy_for(None),
        "overrides": IdlePolicy.objects.filter(platform=False).select_related("tenant").order_by("tenant__slug"),
        **_idle_listing(Allocation.objects.all()),
    })  # fmt: skip


@login_required
def tenant_idle(request, slug):
    """A tenant's admins see the idle policy that applies to it, and which of its allocations are idle now."""
    access = Access.of(request)
    tenant = get_tenant_for(access, slug)
    if not access.has_role(tenant.id, Role.ADMIN):
        raise PermissionDenied(_("The idle policy of %(tenant)s is for its admins and owners.") % {"tenant": tenant.slug})
    return render(request, "pools/idle.html", {"tenant": tenant, "platform": idle_policy_for(tenant.id),
                                               **_idle_listing(Allocation.objects.filter(tenant=tenant))})  # fmt: skip


def _idle_listing(allocations) -> dict:
    idle = list(allocations.filter(state=Allocation.State.RUNNING, idle_flagged_at__isnull=False).select_related("tenant", "project"))
    activity = allocations_activity(idle)
    for allocation in idle:
        allocation.activity = activity[allocation.id]
    return {"idle": idle, "currency": settings.OCENTER_CURRENCY}


# The queue page lists this many, in queue order; the rest are counted.
QUEUE_SHOWN = 100


def queue_context(access, tenant=None) -> dict:
    """What the queue page shows: counts by class and tenant, and the first ``QUEUE_SHOWN`` waiting (of ``tenant``, when given)
    with their position in the whole queue, a rough start, and what blocks each (``pools.diagnosis``)."""
    queued = access.scope(Allocation.objects.filter(state=Allocation.State.QUEUED))
    if tenant is not None:
        queued = queued.filter(tenant=tenant)
    by_class = queued.values("priority", "tenant__slug").order_by("priority", "tenant__slug")
    summary = list(by_class.annotate(waiting=Count("id"), oldest=Min("created_at"), units=Sum(F("count") * F("compute_units"))))
    reached = access.tenant_ids()
    order = [(i, w.id) for i, w in enumerate(queue_order(), start=1)
             if (tenant is None or w.tenant_id == tenant.id) and (reached is None or w.tenant_id in reached)]  # fmt: skip
    shown = dict((a_id, i) for i, a_id in order[:QUEUE_SHOWN])
    waiting = sorted(Allocation.objects.select_related("tenant", "project").filter(id__in=shown), key=lambda a: shown[a.id])
    starts = estimated_starts(waiting, shown)
    found = blockers(waiting)
    for allocation in waiting:
        allocation.position, allocation.estimated_start = shown[allocation.id], starts.get(allocation.id)
        allocation.blocker = found.get(allocation.id)
    for row in summary:
        row["priority_label"] = Allocation.Priority(row["priority"]).label
    return {"summary": summary, "waiting": waiting, "total": len(order), "tenant": tenant, "show_tenant": tenant is None,
            "currency": settings.OCENTER_CURRENCY}  # fmt: skip


@login_required
def queue(request, slug=None):
    """Everything waiting (staff: the platform's; a tenant's people: their tenant's), in queue order, with why each waits. Live."""
    access = Access.of(request)
    tenant = get_tenant_for(access, slug) if slug else None
    if tenant is None and not access.is_staff:
        raise PermissionDenied(_("The platform's queue is for staff; your tenants' queues are on their pages."))
    return render(request, "pools/queue.html", queue_context(access, tenant))


RELEASABLE = (Allocation.State.QUEUED, Allocation.State.CLAIMING, Allocation.State.RUNNING)


def allocation_context(access, allocation: Allocation, user) -> dict:
    """What an allocation's page shows: where it runs, its history, what it cost so far, its use over time and, while it
    waits, its place and why; the launch environment only to who asked for it and its tenant's admins."""
    now = timezone.now()
    slices = list(allocation.slices.select_related("pool", "accelerator__node").order_by("index"))
    events = list(allocation.events.order_by("at", "id"))
    admin = access.has_role(allocation.tenant_id, Role.ADMIN) and not access.is_staff
    context = {"a": allocation, "slices": slices, "events": events, "currency": settings.OCENTER_CURRENCY,
               "preempted": list(Allocation.objects.filter(preempted_by=allocation).select_related("tenant")),
               "requeued_as": Allocation.objects.filter(requeued_from=allocation).first(),
               "shows_env": allocation.created_by_id == user.id or admin,
               "can_release": access.has_role(allocation.tenant_id, Role.MEMBER) and allocation.state in RELEASABLE}  # fmt: skip
    if allocation.started_at:
        until = allocation.ended_at or now
        context["cost"] = seams.cost_since({allocation.id: allocation.started_at}, until).get(allocation.id)
        since = max(allocation.started_at, until - timedelta(days=7))
        points = allocation_usage(allocation, since=since, now=until, resolution=usage_resolution(since, until))
        context["chart"] = line_chart({_("mean of its slices"): [(p["at"], p["utilization"]) for p in points],
                                       _("busiest slice"): [(p["at"], p["busiest"]) for p in points]},
                                      since=since, until=max(until, since + timedelta(minutes=10)), top=100, unit="%")  # fmt: skip
    if allocation.state == Allocation.State.QUEUED:
        allocation.position = queue_positions([allocation.id]).get(allocation.id)
        allocation.estimated_start = estimated_starts([allocation], {allocation.id: allocation.position}).get(allocation.id)
        context["blocker"] = blockers([allocation]).get(allocation.id)
    return context


@login_required
def allocation_detail(request, allocation_id):
    access = Access.of(request)
    allocation = get_object_or_404(allocations_for(access).select_related("preempted_by__tenant", "requeued_from", "created_by"),
                                   id=allocation_id)  # fmt: skip
    return render(request, "pools/allocation_detail.html", allocation_context(access, allocation, request.user))


@staff_required
def gpu_heatmap(request, pool_id=None):
    """One cell per GPU (of a pool, or of the whole fleet), coloured by allocated compute or utilization; who holds what on
    hover and focus; live. Drawn by ``static/js/heatmap.js`` from the figures in the page (10,000 GPUs are ~1 MB of them)."""
    pool = _get_pool_for_staff(pool_id) if pool_id else None
    return render(request, "pools/heatmap.html", {"pool": pool, "cells": heatmap(pool), "words": _heatmap_words()})


def _heatmap_words() -> dict:
    """What the heatmap's script says, in the page's language."""
    return {"units": _("units"), "utilization": _("utilization"), "no_figures": _("no utilization reported"),
            "unhealthy": _("unhealthy"), "free": _("free"), "held_by": _("held by")}  # fmt: skip
