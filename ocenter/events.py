"""
Live events: a service publishes after its transaction commits, so nobody is
told of a change that was rolled back. Groups are named here, in one place,
and the websocket consumer chooses which a user may join.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

STAFF_GROUP = "staff"


def tenant_group(tenant_id) -> str:
    return f"tenant.{tenant_id}"


def publish(groups: list[str], event: dict):
    """Send ``event`` to every group now (best effort: live views are not the truth)."""
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, {"type": "ocenter.event", "event": event})
        except Exception:  # a channel layer outage must not break the write that triggered it
            log.warning("could not publish %s to %s", event.get("kind"), group, exc_info=True)


def publish_on_commit(groups: list[str], event: dict):
    """Send ``event`` once the current transaction commits."""
    transaction.on_commit(lambda: publish(groups, event))
