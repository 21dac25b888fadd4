"""
Django checks a persistent connection (``CONN_HEALTH_CHECKS``) with a
``SELECT 1`` before the first query of every request: under load, a round trip
in each of a request's ten for a connection that answered a moment ago.

As connection pools do (HikariCP skips its check for a connection used in the
last 500 ms), a connection that ran a query less than ``ALIVE_FOR`` seconds ago
is taken to be alive; one idle longer is checked before use, as before. A
connection that breaks in between fails that one request, and Django closes it
at the request's end (``errors_occurred``).
"""

import time

from django.db.backends.postgresql import base

ALIVE_FOR = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    used_at = float("-inf")

    def create_cursor(self, name=None):
        self.used_at = time.monotonic()
        return super().create_cursor(name)

    def close_if_health_check_failed(self):
        if self.connection is not None and time.monotonic() - self.used_at < ALIVE_FOR:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
