"""The idle pages: staff set the policies; a tenant's admins see theirs; allocation rows show use and idleness."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ocenter.models import AuditEntry
from pools.models import Allocation, IdlePolicy
from pools.services.allocations import allocation_request
from pools.services.sync import pool_sync
from tenants.models import Role

pytestmark = pytest.mark.django_db


def test_staff_set_the_platforms_policy_and_a_tenants_own_then_clear_it(client, staff, fleet):
    acme = fleet.tenant("acme")
    client.force_login(staff)
    assert client.get("/console/idle/").status_code == 200
    fields = {"threshold_percent": 3, "idle_minutes": 20, "grace_minutes": 30, "action": "demote"}
    assert client.post("/console/idle/", {**fields, "tenant": ""}).status_code == 302
    assert client.post("/console/idle/", {**fields, "tenant": "acme", "action": "notify"}).status_code == 302
    platform, own = IdlePolicy.objects.get(platform=True), IdlePolicy.objects.get(tenant=acme[0])
    assert (platform.idle_minutes, platform.action, own.action) == (20, "demote", "notify")
    assert AuditEntry.objects.filter(action="idle_policy.set").count() == 2
    page = client.get("/console/idle/").content.decode()
    assert "acme" in page and "only tell its owner" in page
    assert client.post("/console/idle/", {"clear": "acme"}).status_code == 302
    assert not IdlePolicy.objects.filter(tenant=acme[0]).exists()
    refused = client.post("/console/idle/", {**fields, "threshold_percent": 0, "tenant": "nobody"})
    assert refused.status_code == 200 and "No tenant" in refused.content.decode()


def test_only_staff_reach_the_console_page_and_only_a_tenants_admins_its_own(client, fleet, outsider):
    member, admin = fleet.tenant("acme", role=Role.MEMBER), fleet.tenant("globex", role=Role.ADMIN)
    client.force_login(member[2])
    assert client.get("/console/idle/").status_code == 403
    assert client.get("/t/acme/idle/").status_code == 403  # a member, not an admin
    from pools.services.idle import idle_policy_set

    idle_policy_set(actor=None, threshold_percent=7, idle_minutes=12, grace_minutes=34, action="notify")
    client.force_login(admin[2])
    page = client.get("/t/globex/idle/").content.decode()
    assert "The idle policy that applies" in page and "for 12 minutes" in page and "only tell its owner" in page  # the platform's
    assert client.get("/t/acme/idle/").status_code == 404  # another tenant's


def test_allocation_rows_show_their_use_and_an_idle_badge(client, fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    idle = allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=25, memory_mib=1024,
                              labels={"ocenter.io/simulate": "idle"})[0]  # fmt: skip
    from pools.models import Pool

    Pool.objects.filter(id=fleet.pool.id).update(sampled_at=None)
    pool_sync(pool_id=fleet.pool.id)
    Allocation.objects.filter(id=idle.id).update(idle_since=timezone.now() - timedelta(minutes=40), idle_flagged_at=timezone.now())
    client.force_login(user)
    page = client.get("/t/acme/allocations/").content.decode()
    assert 'data-idle="true"' in page and "0 %" in page
