"""An allocation's history: every move from one state to the next is recorded, audited when it matters, and told."""

from django.utils import timezone
from django.utils.translation import gettext_noop as N_  # stored in English, shown translated

from ocenter.audit import actor_label, audit_record
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from pools.models import Allocation, AllocationEvent


def transition(allocation: Allocation, to_state: str, *, actor, reason: str = "", audit: bool = False, via: str = "", **fields):
    """Move ``allocation`` to ``to_state``, record it, and tell its tenant and staff once committed.

    ``via``: a state it passed through on the way, recorded as its own step
    (a new request placed at once was queued, then claiming). ``fields`` are
    set on the allocation in the same save.
    """
    from_state = allocation.state if allocation.pk and not allocation._state.adding else ""
    steps = [(from_state, via, N_("requested")), (via, to_state, reason)] if via else [(from_state, to_state, reason)]
    allocation.state = to_state
    allocation.reason = reason[:500]
    for name, value in fields.items():
        setattr(allocation, name, value)
    allocation.save()
    label = actor_label(actor)
    AllocationEvent.objects.bulk_create(
        [AllocationEvent(allocation=allocation, from_state=a, to_state=b, actor_label=label, reason=why[:500]) for a, b, why in steps]
    )
    if audit:
        audit_record(
            actor=actor,
            action=f"allocation.{to_state}",
            obj=allocation,
            tenant_id=allocation.tenant_id,
            changes={"state": [from_state, to_state], "reason": reason},
        )
    at = timezone.now().isoformat()
    for a, b, why in steps:
        publish_on_commit(
            [STAFF_GROUP, tenant_group(allocation.tenant_id)],
            {
                "kind": "allocation.updated",
                "allocation": str(allocation.id),
                "tenant": str(allocation.tenant_id),
                "from": a,
                "state": b,
                "reason": why[:500],
                "at": at,
            },
        )


def note_reason(allocation: Allocation, reason: str):
    """Say why an allocation waits, without a transition (it stays in its state); a reason unchanged is not written."""
    reason = reason[:500]
    if allocation.reason != reason:
        allocation.reason = reason
        allocation.save(update_fields=["reason", "updated_at"])
