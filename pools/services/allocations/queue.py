"""The queue: waiting requests are placed, in queue order, as room frees."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_noop as N_

from ocenter.errors import Refused
from pools.models import Allocation
from pools.selectors import queue_order, tenant_quotas, tenant_usage
from pools.services.allocations.claim import allocation_claim
from pools.services.allocations.history import note_reason, transition
from pools.services.allocations.room import hold, try_place
from tenants.models import Tenant

State = Allocation.State


def queue_drain(*, limit: int = 500) -> int:
    """Place queued requests, in queue order, while there is room; claim those placed. Returns how many started."""
    placed = []
    for waiting in queue_order(limit=limit):
        with transaction.atomic():
            Tenant.objects.select_for_update(of=("self",)).get(id=waiting.tenant_id)
            allocation = (
                Allocation.objects.select_for_update(of=("self",), skip_locked=True).filter(id=waiting.id, state=State.QUEUED).first()
            )
            if allocation is None:
                continue
            usage = tenant_usage([allocation.tenant_id]).get(allocation.tenant_id, [])
            try:
                chosen = try_place(allocation, usage=usage, quotas=tenant_quotas(allocation.tenant_id))
            except Refused as exc:
                note_reason(allocation, f"waiting for quota: {exc.detail}")
                continue
            if chosen:
                transition(allocation, State.CLAIMING, actor=None, reason=N_("placed from the queue"))
                hold(allocation, chosen)
                placed.append(allocation.id)
    for allocation_id in placed:
        allocation_claim(allocation_id=allocation_id)
    return len(placed)
