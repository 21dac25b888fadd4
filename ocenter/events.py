"""
Live events: a service publishes after its transaction commits, so nobody is
told of a change that was rolled back. Groups are named here, in one place,
and the websocket consumer chooses which a user may join.
"""

import asyncio
import atexit
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

STAFF_GROUP = "staff"


def tenant_group(tenant_id) -> str:
    return f"tenant.{tenant_id}"


async def _send(layer, groups: list[str], event: dict):
    for group in groups:
        try:
            await layer.group_send(group, {"type": "ocenter.event", "event": event})
        except Exception:  # a channel layer outage must not break the write that triggered it
            log.warning("could not publish %s to %s", event.get("kind"), group, exc_info=True)


class _Sender:
    """A thread of this process with its own event loop that sends events in the order given.

    ``async_to_sync`` from a thread with no event loop above it (a Celery task,
    a management command) starts a loop, and the Redis layer a connection, for
    every call: ~10 ms a message. Here the loop and its connections last, and
    the writer does not wait for Redis at all.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None

    def submit(self, layer, groups, event):
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: the parent's thread did not come along
                self._loop = asyncio.new_event_loop()
                self._queue = asyncio.Queue()
                threading.Thread(target=self._run, name="ocenter-events", daemon=True).start()
                if self._pid is None:
                    atexit.register(self.flush)
                self._pid = os.getpid()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (layer, groups, event))

    def flush(self, timeout: float = 2.0):
        """Wait (a little) until every event submitted is sent: a command that exits right after its change still tells."""
        if self._pid != os.getpid():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._queue.join(), self._loop).result(timeout)
        except Exception:  # at exit, with Redis gone or slow: give up rather than hang
            log.warning("live events still unsent at exit were dropped")

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._drain())

    async def _drain(self):
        while True:
            layer, groups, event = await self._queue.get()
            try:
                await _send(layer, groups, event)
            finally:
                self._queue.task_done()


_sender = _Sender()
# Sends scheduled on a running loop, kept until done (a loop holds only weak references to its tasks).
_in_flight: set = set()


# Called with every event published (``ocenter.webhooks.on_event``): what else hears of it besides websockets.
sinks: list = []


def publish(groups: list[str], event: dict):
    """Send ``event`` to every group (best effort: live views are not the truth), and hand it to every sink.

    The in-memory layer lives in the server's own event loop, so it is sent
    there; a cross-process layer (Redis) is sent from this process's sender thread.
    """
    for sink in sinks:
        try:
            sink(groups, event)
        except Exception:  # a sink's failure (the database away) must not break the write that triggered it
            log.warning("a sink could not take %s", event.get("kind"), exc_info=True)
    layer = get_channel_layer()
    if layer is None:
        return
    if not isinstance(layer, InMemoryChannelLayer):
        _sender.submit(layer, groups, event)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(_send)(layer, groups, event)
    else:
        # Sync code called from inside a running loop (a sync ORM write under Playwright's loop, say):
        # async_to_sync cannot run here, so the send becomes a task of that loop.
        task = loop.create_task(_send(layer, groups, event))
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)


def publish_on_commit(groups: list[str], event: dict):
    """Send ``event`` once the current transaction commits."""
    transaction.on_commit(lambda: publish(groups, event))
