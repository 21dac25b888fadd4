"""The audit log records attempts that changed nothing (failed logins, refused actions), and no entry for a save that
changes nothing."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from ocenter.models import AuditEntry

pytestmark = pytest.mark.django_db


def test_a_failed_login_is_recorded_with_who_was_tried_and_from_where_not_the_password(client):
    get_user_model().objects.create_user("alice", password="right-0123456789")
    client.post("/login/", {"username": "alice", "password": "wrong-guess"}, REMOTE_ADDR="10.1.2.3")
    entry = AuditEntry.objects.get(action="login.failed")
    assert entry.actor_label == "alice" and entry.source_ip == "10.1.2.3" and "wrong-guess" not in str(entry.changes)


def test_refused_actions_are_recorded_on_pages_and_in_the_api(client, fleet):
    _, project, user, api = fleet.tenant("acme")
    client.force_login(user)
    assert client.get("/console/").status_code == 403
    page = AuditEntry.objects.get(action="access.refused")
    assert page.actor_id == user.id and page.object_repr == "GET /console/" and page.changes["status"] == 403
    assert APIClient().get("/api/v1/projects").status_code == 401
    assert api.post("/api/v1/tokens", {"name": "platform"}, format="json").status_code == 403  # a platform token is staff's
    anonymous, member = AuditEntry.objects.filter(action="access.refused").order_by("at")[1:3]
    assert anonymous.actor_label == "anonymous" and anonymous.changes["status"] == 401
    assert member.actor_id == user.id and member.changes["status"] == 403 and member.object_repr == "POST /api/v1/tokens"


def test_a_save_that_changes_nothing_writes_no_entry(fleet):
    from billing.services import budget_set
    from pools.services.idle import idle_policy_set
    from tenants.services import quota_set
    from tests.fleet import BIG

    tenant, _, user, _ = fleet.tenant("acme")
    budget_set(actor=user, tenant=tenant, amount=Decimal("100.00"))
    idle_policy_set(actor=user, tenant=tenant, threshold_percent=5, idle_minutes=30, grace_minutes=60, action="release")
    before = AuditEntry.objects.count()
    quota_set(actor=user, tenant=tenant, project=None, **BIG)  # as the fixture set it
    budget_set(actor=user, tenant=tenant, amount=Decimal("100"))
    idle_policy_set(actor=user, tenant=tenant, threshold_percent=5, idle_minutes=30, grace_minutes=60, action="release")
    assert AuditEntry.objects.count() == before
    budget_set(actor=user, tenant=tenant, amount=Decimal("120"))  # a real change is still recorded
    assert AuditEntry.objects.count() == before + 1
