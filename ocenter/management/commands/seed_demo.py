"""
Seed the embedded demo: an admin user, two tenants (each with an owner, a
project, a quota and a budget), the demo pools and a price book.

Idempotent: what exists is left as it is. The pools, their URLs and tokens
come from a JSON file written by ``dev.py``, so the agents and oCenter agree.
"""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Price
from billing.services import budget_set, price_set
from ocenter.audit import audit_record
from pools.agent.backends.simulated import SIMULATE_LABEL
from pools.models import Allocation, IdlePolicy, Pool
from pools.services.allocations import allocation_request
from pools.services.idle import idle_policy_set
from pools.services.pools import pool_register
from tenants.models import Role, Tenant
from tenants.services import membership_add, project_create, quota_set, tenant_create

# Price per GPU-hour by model and class (CNY), and per GiB-hour of GPU memory.
DEMO_PRICES = {
    "A100-SXM4-80GB": {"realtime": "16.00", "interruptible": "10.40", "offline": "6.40"},
    "H100-SXM5-80GB": {"realtime": "32.00", "interruptible": "20.80", "offline": "12.80"},
    "Ascend-910B": {"realtime": "11.00", "interruptible": "7.15", "offline": "4.40"},
}
DEMO_MEMORY_GIB_HOUR = "0.02"
# The smallest Ascend vNPU template costs a quarter more per unit than the whole NPU, in every class.
DEMO_TEMPLATE_PRICES = {("Ascend-910B", "vir05_1c_16g"): {"realtime": "13.75", "interruptible": "8.95", "offline": "5.50"}}
DEMO_BUDGETS = {"acme": ("monthly", "20000.00", "notify"), "globex": ("monthly", "8000.00", "refuse")}

# slug, name, owner, project, and a tenant-wide quota: guarantee and limit in
# compute units (100 = one GPU), MiB, slices.
# The demo's platform idle policy: short, so that an idle allocation is flagged in its first minutes.
DEMO_IDLE_POLICY = {"threshold_percent": 5, "idle_minutes": 2, "grace_minutes": 15, "action": "release"}
# What the demo tenants run from the start: (tenant, count × units and MiB, class, how the simulated agent makes it behave).
DEMO_WORK = [
    ("acme", 1, 50, 40_960, "interruptible", "busy"),
    ("acme", 1, 25, 16_384, "offline", "idle"),  # goes idle, and is flagged within the demo's first minutes
    ("globex", 2, 100, 81_920, "realtime", "busy"),
]

DEMO_TENANTS = [
    ("acme", "Acme Robotics", "alice", "vision", (800, 1600, 8 * 81920, 16 * 81920, 32, 64)),
    ("globex", "Globex Research", "bob", "llm", (400, 1600, 4 * 81920, 16 * 81920, 16, 64)),
]


class Command(BaseCommand):
    help = "Create the demo's admin user, tenants and pools (from a JSON spec written by dev.py)."

    def add_arguments(self, parser):
        parser.add_argument("spec", help='JSON: {"admin_password": …, "pools": [{"name", "region", "agent_url", "token"}]}')

    def handle(self, *args, spec, **options):
        try:
            data = json.loads(Path(spec).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {spec}: {exc}") from None
        with transaction.atomic():
            self._admin(data["admin_password"])
            for slug, name, owner, project, amounts in DEMO_TENANTS:
                if not Tenant.objects.filter(slug=slug).exists():
                    self._tenant(slug, name, owner, project, amounts, data["admin_password"])
            for item in data["pools"]:
                if not Pool.objects.filter(name=item["name"]).exists():
                    pool_register(actor=None, **item)
            if not Price.objects.exists():
                since = datetime(2026, 1, 1, tzinfo=UTC)
                for model, by_class in DEMO_PRICES.items():
                    for priority, gpu_hour in by_class.items():
                        price_set(
                            actor=None,
                            accelerator_model=model,
                            priority=priority,
                            compute_gpu_hour=Decimal(gpu_hour),
                            memory_gib_hour=Decimal(DEMO_MEMORY_GIB_HOUR),
                            effective_from=since,
                        )
                for (model, template), by_class in DEMO_TEMPLATE_PRICES.items():
                    for priority, gpu_hour in by_class.items():
                        price_set(actor=None, accelerator_model=model, template=template, priority=priority,
                                  compute_gpu_hour=Decimal(gpu_hour), memory_gib_hour=Decimal(DEMO_MEMORY_GIB_HOUR),
                                  effective_from=since)  # fmt: skip
            if not IdlePolicy.objects.filter(platform=True).exists():
                idle_policy_set(actor=None, **DEMO_IDLE_POLICY)
        # The pools were synced when they committed: now there are GPUs to run the demo's work on.
        if not Allocation.objects.exists():
            for slug, count, units, mib, priority, behaviour in DEMO_WORK:
                tenant = Tenant.objects.get(slug=slug)
                allocation_request(actor=None, tenant=tenant, project=tenant.projects.first(), count=count, compute_units=units,
                                   memory_mib=mib, priority=priority, labels={SIMULATE_LABEL: behaviour})  # fmt: skip
        self.stdout.write(f"demo seeded: admin, {Tenant.objects.count()} tenants, {Pool.objects.count()} pools")

    def _tenant(self, slug, name, owner, project, amounts, password):
        tenant = tenant_create(actor=None, slug=slug, name=name)
        membership_add(actor=None, tenant=tenant, username=owner, email=f"{owner}@example.com", role=Role.OWNER, password=password)
        project_create(actor=None, tenant=tenant, slug=project, name=project.title())
        period, budget, action = DEMO_BUDGETS[slug]
        budget_set(actor=None, tenant=tenant, period=period, amount=Decimal(budget), thresholds=[50, 80, 100], action=action)
        g_units, l_units, g_mib, l_mib, g_slices, l_slices = amounts
        quota_set(
            actor=None,
            tenant=tenant,
            project=None,
            guarantee_compute_units=g_units,
            limit_compute_units=l_units,
            guarantee_memory_mib=g_mib,
            limit_memory_mib=l_mib,
            guarantee_slices=g_slices,
            limit_slices=l_slices,
        )

    def _admin(self, password):
        User = get_user_model()
        user = User.objects.filter(username="admin").first()
        if user is None:
            user = User.objects.create_superuser("admin", "admin@example.com", password)
            audit_record(actor=None, action="user.create", obj=user, changes={"username": "admin", "is_staff": True})
        elif not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
