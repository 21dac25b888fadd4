"""The demo seed over the three example agents: three pools with 64 GPUs between them."""

import json
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from billing.models import Budget, Price
from pools.models import Accelerator, Pool
from pools.services.sync import pools_sync_all
from tenants.models import Membership, Quota, Tenant
from tests.agents import AgentProcess

EXAMPLES = Path(__file__).resolve().parents[2] / "pools" / "agent" / "examples"


@pytest.mark.django_db(transaction=True)
def test_seed_demo_registers_three_pools_with_64_gpus(tmp_path):
    agents = []
    try:
        for name in ("bj-a100", "sh-h100", "edge-910b"):
            agent = AgentProcess(tmp_path, name, [], token=f"{name}-demo-token-0123456789")
            shutil.copy(EXAMPLES / f"{name}.toml", agent.config)
            agents.append(agent.start())
        spec = tmp_path / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "admin_password": "demo-password-1",
                    "pools": [{"name": a.pool, "region": "r", "agent_url": a.url, "token": a.token} for a in agents],
                }
            )
        )
        call_command("seed_demo", str(spec))
        call_command("seed_demo", str(spec))  # idempotent
        pools_sync_all()
    finally:
        for agent in agents:
            agent.stop()
    assert sorted(Pool.objects.values_list("name", "status")) == [("bj-a100", "healthy"), ("edge-910b", "healthy"), ("sh-h100", "healthy")]
    assert Accelerator.objects.filter(gone_at=None).count() == 64
    assert Tenant.objects.count() == 2
    assert sorted(Membership.objects.values_list("user__username", "tenant__slug", "role")) == [
        ("alice", "acme", "owner"),
        ("bob", "globex", "owner"),
    ]
    assert Quota.objects.filter(project=None).count() == 2
    # Work runs from the start, one piece of it idle, under a short platform idle policy.
    from pools.models import Allocation, IdlePolicy

    assert Allocation.objects.filter(state="running").count() == 3 and IdlePolicy.objects.get(platform=True).idle_minutes == 2
    assert [a.labels["ocenter.io/simulate"] for a in Allocation.objects.order_by("created_at")] == ["busy", "idle", "busy"]
    assert Price.objects.count() == 12 and Budget.objects.count() == 2
    from decimal import Decimal

    from django.utils import timezone

    from billing.selectors import PriceBook

    book, now = PriceBook(), timezone.now()
    assert book.at("edge", "Ascend-910B", "offline", now, "vir05_1c_16g").compute_gpu_hour == Decimal("5.50")  # its template's
    assert book.at("edge", "Ascend-910B", "offline", now, "vir10_3c_32g").compute_gpu_hour == Decimal("4.40")  # the model's
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.check_password("demo-password-1")
