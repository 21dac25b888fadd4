"""
In-process periodic jobs for the embedded default (no Redis, no beat).

The ASGI server's lifespan starts one thread per entry of the beat table;
each runs its task in that thread every period. A slow job delays only
itself. Production runs Celery beat and a worker instead.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connections

log = logging.getLogger(__name__)


class EmbeddedJobs:
    """Runs the beat table in daemon threads until stopped."""

    def __init__(self, schedule: dict | None = None):
        self.schedule = schedule if schedule is not None else settings.CELERY_BEAT_SCHEDULE
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self):
        from ocenter.celery import app

        app.loader.import_default_modules()  # runs autodiscovery: the apps' tasks modules
        for name, entry in self.schedule.items():
            task = app.tasks[entry["task"]]
            thread = threading.Thread(target=self._loop, args=(name, task, float(entry["schedule"])), name=f"job-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("embedded jobs started: %s", ", ".join(self.schedule))

    def _loop(self, name, task, period):
        while not self._stop.is_set():
            close_old_connections()
            try:
                task.apply(throw=True)
            except Exception:
                log.exception("job %s failed", name)
            finally:
                connections.close_all()
            self._stop.wait(period)

    def stop(self, timeout: float = 10):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


class LifespanJobs:
    """An ASGI lifespan handler that runs the embedded jobs while the server runs."""

    def __init__(self):
        self.jobs = None

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.jobs = EmbeddedJobs()
                self.jobs.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.jobs:
                    self.jobs.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
