"""Billing pages: staff see every tenant's spend and the price book; a tenant sees only its own."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Budget, Price
from billing.services import usage_meter
from tenants.models import Membership, Role
from tests.billing.conftest import at, price

pytestmark = pytest.mark.django_db


def test_staff_add_a_price_and_see_every_tenant(client, staff, ledger):
    ledger.project("acme")
    ledger.project("globex")
    client.force_login(staff)
    response = client.post(
        reverse("billing:console"), {"compute_gpu_hour": "12.5", "memory_gib_hour": "0", "effective_from": "2026-12-01 00:00"}
    )
    assert response.status_code == 302 and Price.objects.get().compute_gpu_hour == Decimal("12.5")
    page = client.get(reverse("billing:console")).content.decode()
    assert "acme" in page and "globex" in page and "12.5" in page


def test_a_tenant_sees_its_spend_budget_and_nothing_of_others(client, ledger, django_user_model):
    price("10.00")
    project = ledger.project("acme")
    ledger.project("globex")
    user = django_user_model.objects.create_user("adam", password="pw-0123456789")
    Membership.objects.create(tenant=project.tenant, user=user, role=Role.ADMIN)
    ledger.run(project, ("2026-11-20 10:00:00", "2026-11-20 12:00:00"))
    usage_meter(now=at("2026-11-21 00:00:00"))
    client.force_login(user)
    response = client.post(
        reverse("billing:tenant", args=["acme"]),
        {"period": "monthly", "amount": "100", "thresholds": "50, 100", "action": "refuse", "grace_seconds": 0},
    )
    assert response.status_code == 302 and Budget.objects.get().thresholds == [50, 100]
    page = client.get(reverse("billing:tenant", args=["acme"])).content.decode()
    assert "20.00" in page and "refuse new allocations" in page and "<rect" in page
    assert client.get(reverse("billing:tenant", args=["globex"])).status_code == 404
    assert client.get(reverse("billing:console")).status_code == 403


def test_bad_thresholds_are_explained(client, ledger, django_user_model):
    project = ledger.project("acme")
    user = django_user_model.objects.create_user("adam", password="pw-0123456789")
    Membership.objects.create(tenant=project.tenant, user=user, role=Role.ADMIN)
    client.force_login(user)
    page = client.post(
        reverse("billing:tenant", args=["acme"]),
        {"period": "monthly", "amount": "100", "thresholds": "half", "action": "refuse", "grace_seconds": 0},
    ).content.decode()
    assert "Write whole percentages" in page and not Budget.objects.exists()


def test_usage_through_the_api_holds_only_the_callers_tenant(ledger, django_user_model):
    from rest_framework.test import APIClient

    price("10.00")
    acme, globex = ledger.project("acme"), ledger.project("globex")
    ledger.run(acme, ("2026-11-20 10:00:00", "2026-11-20 11:00:00"))
    ledger.run(globex, ("2026-11-20 10:00:00", "2026-11-20 12:00:00"), gpu=1)
    usage_meter(now=at("2026-11-21 00:00:00"))
    user = django_user_model.objects.create_user("mia", password="pw-0123456789")
    Membership.objects.create(tenant=acme.tenant, user=user, role=Role.VIEWER)
    api = APIClient()
    api.force_login(user)
    rows = api.get("/api/v1/usage?group_by=tenant,day").json()["results"]
    assert rows == [{"tenant": "acme", "day": "2026-11-20", "seconds": "3600.000000", "gpu_hours": "1.0000", "amount": "10.00"}]
    assert api.get("/api/v1/usage?tenant=globex").json()["results"] == []
    bad = api.get("/api/v1/usage?group_by=colour")
    assert bad.status_code == 400 and "group_by" in bad.json()["errors"]
