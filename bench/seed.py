"""Seed the bench database: three pools (10,000 GPUs), 32 tenants with room to spare, prices, one token each.

Run by bench/run.py with DJANGO_SETTINGS_MODULE and DATABASE_URL set; prints JSON on stdout.
"""

import json
import sys
from datetime import timedelta
from decimal import Decimal

import django

django.setup()

from django.utils import timezone  # noqa: E402

from billing.services import price_set  # noqa: E402
from pools.models import Accelerator  # noqa: E402
from pools.services.pools import pool_register  # noqa: E402
from pools.services.sync import pools_sync_all  # noqa: E402
from tenants.models import Membership, Project, Role  # noqa: E402
from tenants.services import quota_set, tenant_create, token_create  # noqa: E402


def main():
    spec = json.loads(sys.stdin.read())
    for pool in spec["pools"]:
        pool_register(actor=None, name=pool["name"], region="bench", agent_url=pool["url"], token=pool["token"])
    pools_sync_all()
    price_set(
        actor=None, compute_gpu_hour=Decimal("16.00"), memory_gib_hour=Decimal("0.02"), effective_from=timezone.now() - timedelta(days=1)
    )
    from django.contrib.auth import get_user_model

    User = get_user_model()
    tenants = []
    for i in range(spec["tenants"]):
        tenant = tenant_create(actor=None, slug=f"bench-{i:02d}", name=f"Bench {i}")
        project = Project.objects.create(tenant=tenant, slug="load", name="Load")
        quota_set(
            actor=None,
            tenant=tenant,
            project=None,
            guarantee_compute_units=10**7,
            limit_compute_units=10**7,
            guarantee_memory_mib=10**12,
            limit_memory_mib=10**12,
            guarantee_slices=10**6,
            limit_slices=10**6,
        )
        user = User.objects.create_user(f"bench-{i:02d}")
        Membership.objects.create(tenant=tenant, user=user, role=Role.MEMBER)
        _, secret = token_create(actor=None, user=user, tenant=tenant, name="bench")
        tenants.append({"slug": tenant.slug, "project": str(project.id), "token": secret})
    print(json.dumps({"gpus": Accelerator.objects.filter(gone_at=None).count(), "tenants": tenants}))


main()
