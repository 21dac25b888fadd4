"""Test settings: the project's own, from the same environment, with test-only speedups.

SQLite and the in-memory channel layer by default; PostgreSQL and Redis when
DATABASE_URL and REDIS_URL are set (as in CI).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
# Tests start the embedded jobs themselves when they test them.
os.environ.setdefault("OCENTER_EMBEDDED_JOBS", "0")

from ocenter.settings import *  # noqa: F403
from ocenter.settings import DATABASES, VAR_DIR

ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# Fast in tests; PBKDF2 listed too, for users a real server (the browser tests) must log in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
# Tasks run where they are enqueued; the Celery worker test turns this off.
CELERY_TASK_ALWAYS_EAGER = True
OCENTER_AGENT_TIMEOUT = 2.0
# Placement reads the fleet afresh for every request: tests change it behind the view's back.
OCENTER_FLEET_SECONDS = 0
OCENTER_SHARES_SECONDS = 0  # and sums recent use afresh
OCENTER_AGENT_CONNECT_TIMEOUT = 1.0

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory: threads that write at once (pool sync,
    # races) then wait for the lock instead of failing with "table is locked".
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

# The throttles' counters live in this process (a test's cache is cleared before it, tests/conftest.py): tests that
# ask for many tokens must not throttle the next one. Production keeps them in Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
