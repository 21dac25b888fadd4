"""
Websockets. Groups are chosen here, from who is asking, never from anything
the client sends: staff join everything; a tenant's members (or its API
token) join that tenant's group.

- ``/ws/live/``: for pages. Each event is rendered as HTML fragments that
  htmx's websocket extension swaps in by id (out of band).
- ``/ws/events/``: for machines. The same events as JSON; ``?since=<ISO time>``
  first replays the allocation transitions missed while disconnected.
"""

import asyncio
import json
import time
import uuid
from datetime import datetime
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from ocenter.events import STAFF_GROUP, tenant_group
from ocenter.timezones import language_of, rendered_in, zone_of


def _uuid(text: str):
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _groups_for(user, token) -> list[str]:
    from tenants.access import Access

    access = Access(user, token)
    if access.is_staff:
        return [STAFF_GROUP]
    return [tenant_group(tenant_id) for tenant_id in access.roles]


def _render_pool_row(event, staff) -> str:
    from pools.models import Pool
    from pools.selectors import pools_with_summary

    pools = pools_with_summary(Pool.objects.filter(id=event["pool"]))
    return render_to_string("pools/_pool_row.html", {"pool": pools[0], "oob": True}) if pools else ""


def _render_allocation(event, staff) -> str:
    from django.conf import settings

    from pools.models import Allocation
    from pools.selectors import allocations_activity, queue_positions

    allocation = (
        Allocation.objects.select_related("tenant", "project").prefetch_related("slices__pool").filter(id=event["allocation"]).first()
    )
    if allocation is None:
        return ""
    allocation.position = queue_positions([allocation.id]).get(allocation.id) if allocation.state == Allocation.State.QUEUED else None
    allocation.activity = allocations_activity([allocation])[allocation.id]
    new = event.get("from") == ""
    context = {"a": allocation, "show_tenant": staff, "oob": not new, "currency": settings.OCENTER_CURRENCY}
    row = render_to_string("pools/_allocation_row.html", context)
    if new:  # a row the page does not have yet: put it on top
        row = f'<tbody hx-swap-oob="afterbegin:#allocation-rows">{row}</tbody>'
    if event["kind"] != "allocation.updated":  # an idle step: the row's badge tells it
        return row
    return row + render_to_string("includes/_feed_item.html", {"event": event, "allocation": allocation})


def _render_alert(event, staff) -> str:
    return render_to_string("includes/_notification.html", {"message": event["message"]})


def _render_spend(event, staff) -> str:
    from billing.selectors import spend_today, tenants_month_spend
    from tenants.models import Tenant

    if event.get("tenant") is None:
        return render_to_string("includes/_spend_today.html", {"spend_today": spend_today(), "oob": True}) if staff else ""
    tenant = Tenant.objects.filter(id=event["tenant"]).first()
    if tenant is None:
        return ""
    row = tenants_month_spend([tenant.id])[tenant.id]
    return render_to_string("includes/_tenant_spend.html", {"tenant": tenant, "spend": row, "oob": True})


def _render_capacity() -> str:
    """The overview's allocated bars and fragmentation tile, to swap in out of band."""
    from pools.selectors import capacity, fragmentation

    context = {"by_pool": capacity("pool__name"), "by_model": capacity("model"), "fragmentation": fragmentation(), "oob": True}
    return render_to_string("console/_capacity.html", context) + render_to_string("console/_fragmentation.html", context)


def _render_queue(user, token, slug: str) -> str:
    """The queue page's section as this user sees it (``slug``: a tenant's queue; none: the platform's, for staff)."""
    from pools.views import queue_context
    from tenants.access import Access

    access = Access(user, token)
    tenant = access.tenants().filter(slug=slug).first() if slug else None
    if (slug and tenant is None) or (not slug and not access.is_staff):
        return ""
    return render_to_string("pools/_queue.html", {**queue_context(access, tenant), "oob": True})


def _render_allocation_page(user, token, allocation_id) -> str:
    """An allocation page's live part, if this user may see the allocation."""
    from pools.selectors import allocations_for
    from pools.views import allocation_context
    from tenants.access import Access

    access = Access(user, token)
    related = ("preempted_by__tenant", "requeued_from", "created_by")
    allocation = allocations_for(access).select_related(*related).filter(id=allocation_id).first()
    if allocation is None:
        return ""
    return render_to_string("pools/_allocation_detail.html", {**allocation_context(access, allocation, user), "oob": True})


def _render_heatmap_cells(allocation_id, pool_id) -> str:
    """The heatmap's figures for the GPUs this allocation's slices are on (in that pool, when one is given), for its script."""
    from django.utils.html import format_html

    from pools.models import Slice
    from pools.selectors import heatmap

    gpu_ids = Slice.objects.filter(allocation_id=allocation_id).values("accelerator_id")  # a subquery, not a round trip
    cells = heatmap(pool_id, gpu_ids=gpu_ids)
    if not cells["gpus"]:
        return ""
    return format_html('<div id="heatmap-update" hidden hx-swap-oob="true" data-cells="{}"></div>', json.dumps(cells))


def _render_gpu_rooms(allocation_id, pool_id) -> str:
    """The pool page's cells for the GPUs of this allocation's slices in that pool: what is handed out, and to whom."""
    from pools.models import Accelerator, Slice

    gpu_ids = Slice.objects.filter(allocation_id=allocation_id, pool_id=pool_id).values("accelerator_id")
    gpus = list(Accelerator.objects.filter(id__in=gpu_ids))
    held = {}
    for s in Slice.objects.filter(accelerator__in=gpus, active=True).select_related("allocation__tenant"):
        held.setdefault(s.accelerator_id, []).append(s)
    for gpu in gpus:
        gpu.held = held.get(gpu.id, [])
    return "".join(render_to_string("pools/_gpu_room.html", {"gpu": gpu, "oob": True}) for gpu in gpus)


RENDERERS = {
    "usage.metered": _render_spend,
    "pool.updated": _render_pool_row,
    "allocation.updated": _render_allocation,
    "allocation.idle": _render_allocation,
    "budget.alert": _render_alert,
}


class _ScopedConsumer(AsyncWebsocketConsumer):
    """Joins the groups its user (or token) may see; says nothing to anyone else."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.joined = await database_sync_to_async(_groups_for)(user, self.scope.get("api_token"))
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.connected()

    async def connected(self):
        """Hook for what to send right after accepting."""

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """Nothing a client sends changes what it is sent."""


class LiveConsumer(_ScopedConsumer):
    """Pushes the events a user may see, as HTML fragments for htmx.

    Pages with more to follow say which they are:

    - ``?view=overview`` (the console's overview, staff): the allocated bars
      and the fragmentation tile when allocations move;
    - ``?view=pool&pool=ID`` (a pool's page, staff): the cells of the GPUs an
      allocation moved on there;
    - ``?view=heatmap`` (the fleet's heatmap, staff) or ``&pool=ID`` (a pool's):
      the figures of the GPUs an allocation moved on;
    - ``?view=queue`` (the platform's queue, staff) or ``&tenant=SLUG`` (a
      tenant's): the queue, when an allocation it may see moves;
    - ``?view=allocation&allocation=ID``: the allocation's page, when it moves
      (its events reach only those who may see it).

    What sums the fleet or the queue is sent at most once a ``REFRESH_SECONDS``.
    """

    REFRESH_SECONDS = 1.0

    async def connect(self):
        asked = parse_qs(self.scope.get("query_string", b"").decode())
        self.view = asked.get("view", [""])[0]
        self.pool = _uuid(asked.get("pool", [""])[0])
        self.allocation = _uuid(asked.get("allocation", [""])[0])
        self.tenant_slug = asked.get("tenant", [""])[0][:50]
        self.refreshed_at, self.refresh_due = 0.0, False
        self.zone = await database_sync_to_async(zone_of)(cookies=self.scope.get("cookies"), session=self.scope.get("session"))
        accept = dict(self.scope.get("headers", [])).get(b"accept-language", b"").decode("latin-1")
        self.language = language_of(self.scope.get("cookies"), accept)
        await super().connect()

    async def ocenter_event(self, message):
        event = message["event"]
        render = RENDERERS.get(event.get("kind"))
        if render is None:
            return
        staff = STAFF_GROUP in self.joined
        html = await self._rendered(render, event, staff)
        if html:
            await self.send(text_data=html)
        if event.get("kind") != "allocation.updated":
            return
        if self.view == "overview" and staff:
            await self._refresh_soon(_render_capacity)
        elif self.view == "heatmap" and staff:
            await self._send(await self._rendered(_render_heatmap_cells, event["allocation"], self.pool))
        elif self.view == "pool" and staff and self.pool:
            await self._send(await self._rendered(_render_gpu_rooms, event["allocation"], self.pool))
        elif self.view == "queue":
            await self._refresh_soon(_render_queue, *self.asking, self.tenant_slug)
        elif self.view == "allocation" and self.allocation and event.get("allocation") == str(self.allocation):
            await self._send(await self._rendered(_render_allocation_page, *self.asking, self.allocation))

    @property
    def asking(self) -> tuple:
        """(user, API token or None): who this socket renders for."""
        return self.scope["user"], self.scope.get("api_token")

    async def _send(self, html: str):
        if html:
            await self.send(text_data=html)

    async def _rendered(self, render, *args) -> str:
        """``render(*args)`` as this socket's person reads it: their language, their time zone."""
        return await database_sync_to_async(rendered_in)(self.zone, self.language, render, *args)

    async def _refresh_soon(self, render, *args):
        """``render(*args)`` sent within ``REFRESH_SECONDS``, once for every change until then."""
        if self.refresh_due:  # one is on its way: it will show this change too
            return
        self.refresh_due = True
        wait = max(0.0, self.refreshed_at + self.REFRESH_SECONDS - time.monotonic())
        self.refresh_task = asyncio.create_task(self._refresh(wait, render, *args))

    async def _refresh(self, wait: float, render, *args):
        await asyncio.sleep(wait)
        self.refresh_due, self.refreshed_at = False, time.monotonic()
        await self._send(await self._rendered(render, *args))

    async def disconnect(self, code):
        task = getattr(self, "refresh_task", None)
        if task is not None:
            task.cancel()
        await super().disconnect(code)


def _missed(user, token, since: datetime) -> list[dict]:
    """Allocation transitions since ``since`` that this user may see, oldest first."""
    from pools.models import AllocationEvent
    from tenants.access import Access

    events = (
        Access(user, token)
        .scope(AllocationEvent.objects.filter(at__gt=since).select_related("allocation"), field="allocation__tenant")
        .order_by("at", "id")[:1000]
    )
    return [
        {
            "kind": "allocation.updated",
            "allocation": str(e.allocation_id),
            "tenant": str(e.allocation.tenant_id),
            "from": e.from_state,
            "state": e.to_state,
            "reason": e.reason,
            "at": e.at.isoformat(),
            "replayed": True,
        }
        for e in events
    ]


class EventStreamConsumer(_ScopedConsumer):
    """The same events as JSON, for API clients (``Authorization: Bearer ocn_…``)."""

    async def connected(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        since = query.get("since", [None])[0]
        if since:
            try:
                moment = datetime.fromisoformat(since)
            except ValueError:
                await self.send(text_data=json.dumps({"kind": "error", "detail": "since must be an ISO 8601 time with a zone"}))
                return
            for event in await database_sync_to_async(_missed)(self.scope["user"], self.scope.get("api_token"), moment):
                await self.send(text_data=json.dumps(event))

    async def ocenter_event(self, message):
        await self.send(text_data=json.dumps(message["event"]))
