"""
Work handed to Celery once a transaction commits, in a way a broker outage cannot turn into an error.

What committed has happened: a release whose queue drain cannot be enqueued
(Redis is down) still answers 200. The failure is logged and the task runs in
this process instead, in a thread of its own; the periodic jobs would pick
the work up at their next run in any case.
"""

import logging
import threading

from django.db import connections, transaction
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)


def enqueue_on_commit(task, *args):
    """Send ``task(*args)`` to the workers once the current transaction commits (see ``enqueue``)."""
    transaction.on_commit(lambda: enqueue(task, *args))


def enqueue(task, *args):
    """Send ``task(*args)`` to the workers; when the broker cannot take it, run it here, in a thread."""
    try:
        task.apply_async(args)
    except (OperationalError, OSError) as exc:  # the broker did not take it (a task run eagerly raises its own errors)
        log.warning("could not enqueue %s (%s); running it in this process instead", task.name, exc)
        threading.Thread(target=_run_here, args=(task, args), name=f"fallback-{task.name}", daemon=True).start()


def _run_here(task, args):
    try:
        task.apply(args, throw=True)
    except Exception:
        log.exception("%s failed in its fallback run", task.name)
    finally:
        connections.close_all()  # this thread's own
