"""What issue 15's layers cost one API request: a token's GET /api/v1/projects in-process (Django's test client), with
the Content-Security-Policy and django-axes middleware and the token's rate, then without them (the bad-token check
stays: it is in the authentication). Prints medians; run against a migrated database, with REDIS_URL for Redis' cache:

    DATABASE_URL=postgres://… REDIS_URL=redis://… DB_CONN_MAX_AGE=600 .venv/bin/python bench/layers.py
"""

import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret-0123456789-0123456789")
os.environ["ALLOWED_HOSTS"] = "testserver"  # the test client's host
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from rest_framework.settings import api_settings  # noqa: E402

from tenants.models import Membership, Project  # noqa: E402
from tenants.services import tenant_create, token_create  # noqa: E402

LAYERS = ("csp.middleware.CSPMiddleware", "axes.middleware.AxesMiddleware")


def _client() -> Client:
    user, _ = get_user_model().objects.get_or_create(username="bench-layers")
    tenant = tenant_create(actor=None, slug=f"layers-{int(time.time())}", name="Layers")
    Project.objects.create(tenant=tenant, slug="main", name="Main")
    Membership.objects.create(tenant=tenant, user=user, role="owner")
    _, secret = token_create(actor=None, user=user, tenant=tenant, name="bench")
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _median_ms(client: Client, n: int = 1500) -> float:
    for _ in range(100):
        client.get("/api/v1/projects")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get("/api/v1/projects")
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.content[:200]
    return statistics.median(times)


def main():
    setup_test_environment()
    client = _client()
    lean = [m for m in settings.MIDDLEWARE if m not in LAYERS]
    for round_ in range(2):
        full = _median_ms(client)
        with override_settings(MIDDLEWARE=lean, REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}):
            api_settings.reload()
            without = _median_ms(client)
        api_settings.reload()
        print(f"round {round_}: median {full:.3f} ms with the layers, {without:.3f} ms without ({settings.CACHES['default']['BACKEND']})")


main()
