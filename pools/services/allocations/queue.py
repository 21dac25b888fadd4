"""The queue: waiting requests are placed, in queue order, as room frees."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_noop as N_

from ocenter import reasons
from ocenter.errors import Refused
from pools.fleet import fleet
from pools.models import Allocation
from pools.placement import smallest
from pools.selectors import queue_order, tenant_usage
from pools.services.allocations.claim import allocation_claim
from pools.services.allocations.history import note_reason, transition
from pools.services.allocations.reclaim import reclaim, victims_for
from pools.services.allocations.release import release_finish
from pools.services.allocations.room import fits, try_place
from tenants.quotas import OverLimit
from tenants.selectors import tenant_locked, tenant_quotas

State = Allocation.State


def queue_drain(*, limit: int = 500) -> int:
    """Place queued requests, in queue order, while there is room; claim those placed. Returns how many started.

    A pass first reads the GPUs with room for the smallest request waiting
    (room other processes gave back since this one's view was read), then
    skips without a query every request that its view shows no room for (or
    whose shape found none already).
    Realtime work waiting on its tenant's limit reclaims the tenant's own
    offline and borrowed work again (something may have taken the room its
    first victims gave back); their release wakes the queue once more.
    """
    placed, victims = [], []
    no_room: set = set()  # shapes that found none this pass: room only shrinks as the pass places work
    queue = queue_order(limit=limit)
    for ask in smallest(w.shape for w in queue):
        fleet.refresh(ask)
    for waiting in queue:
        # Checked on the view, before any lock or query.
        if waiting.shape in no_room or fits(waiting.shape) is None:
            no_room.add(waiting.shape)
            continue
        with transaction.atomic():
            tenant_locked(waiting.tenant_id)
            allocation = (
                Allocation.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("tenant")
                .filter(id=waiting.id, state=State.QUEUED)
                .first()
            )
            if allocation is None:
                continue
            usage = tenant_usage([allocation.tenant_id]).get(allocation.tenant_id, [])
            quotas = tenant_quotas(allocation.tenant_id)
            try:
                chosen = try_place(allocation, usage=usage, quotas=quotas, reread=False)
            except OverLimit as over:
                try:
                    victims += reclaim(allocation, victims_for(allocation, quotas=quotas, over=over, room_found=True), actor=None)
                except Refused as exc:
                    note_reason(allocation, reasons.WAITING_FOR_QUOTA % {"detail": exc.detail})
                continue
            except Refused as exc:
                note_reason(allocation, reasons.WAITING_FOR_QUOTA % {"detail": exc.detail})
                continue
            if chosen:
                transition(allocation, State.CLAIMING, actor=None, reason=N_("placed from the queue"), borrowed=allocation.borrowed)
                placed.append(allocation.id)
    for allocation_id in placed:
        allocation_claim(allocation_id=allocation_id)
    for victim in victims:
        release_finish(allocation=victim, final_state=State.PREEMPTED, actor=None)
    return len(placed)
