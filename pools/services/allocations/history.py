"""An allocation's history: every move from one state to the next is recorded, audited when it matters, and told."""

from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_noop as N_  # stored in English, shown translated

from ocenter.audit import actor_label, audit_entry
from ocenter.events import STAFF_GROUP, publish_on_commit, tenant_group
from ocenter.lib.rows import insert_all
from pools.models import Allocation, AllocationEvent


def moved(allocation: Allocation, to_state: str, *, actor, reason: str = "", audit: bool = False, via: str = "", **fields) -> list[Model]:
    """Move ``allocation`` to ``to_state`` in memory; return the rows that record it (its events, and its audit entry), unsaved.

    ``via``: a state it passed through on the way, recorded as its own step
    (a new request placed at once was queued, then claiming). ``fields`` are
    set on the allocation too. The caller writes the allocation and the rows
    together, then ``announce``s them (``transition`` does both).
    """
    from_state = allocation.state if allocation.pk and not allocation._state.adding else ""
    steps = [(from_state, via, N_("requested")), (via, to_state, reason)] if via else [(from_state, to_state, reason)]
    allocation.state = to_state
    allocation.reason = reason[:500]
    for name, value in fields.items():
        setattr(allocation, name, value)
    label, now = actor_label(actor), timezone.now()
    rows = [
        AllocationEvent(allocation=allocation, at=now, from_state=a, to_state=b, actor_label=label, reason=why[:500]) for a, b, why in steps
    ]
    if audit:
        changes = {"state": [from_state, to_state], "reason": reason}
        rows.append(
            audit_entry(actor=actor, action=f"allocation.{to_state}", obj=allocation, tenant_id=allocation.tenant_id, changes=changes)
        )
    return rows


def announce(rows: list[Model]):
    """Tell the allocation's tenant and staff of each move in ``rows`` (``moved``'s), once the write that made them commits."""
    for event in rows:
        if isinstance(event, AllocationEvent):
            publish_on_commit(
                [STAFF_GROUP, tenant_group(event.allocation.tenant_id)],
                {
                    "kind": "allocation.updated",
                    "allocation": str(event.allocation_id),
                    "tenant": str(event.allocation.tenant_id),
                    "from": event.from_state,
                    "state": event.to_state,
                    "reason": event.reason,
                    "at": event.at.isoformat(),
                },
            )


def transition(allocation: Allocation, to_state: str, *, actor, reason: str = "", audit: bool = False, via: str = "", **fields):
    """Move ``allocation`` to ``to_state`` and write it (only the columns that change) with its history and audit entry; announce it."""
    adding = allocation._state.adding
    rows = moved(allocation, to_state, actor=actor, reason=reason, audit=audit, via=via, **fields)
    if adding:
        allocation.save(force_insert=True)
    else:
        allocation.save(update_fields=["state", "reason", "updated_at", *fields])
    insert_all(rows)
    announce(rows)


def note_reason(allocation: Allocation, reason: str):
    """Say why an allocation waits, without a transition (it stays in its state); a reason unchanged is not written."""
    reason = reason[:500]
    if allocation.reason != reason:
        allocation.reason = reason
        allocation.save(update_fields=["reason", "updated_at"])
