"""Budgets: thresholds fire once per period; each action does what it says and nothing more."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import Budget, BudgetAlert, Notification, UsageRecord
from billing.selectors import budget_forecast
from billing.services import budget_set, budgets_evaluate, usage_meter
from ocenter.errors import Refused
from pools.models import Allocation
from pools.services.allocations import allocation_request
from tenants.models import Membership, Role
from tests.billing.conftest import at, price

pytestmark = pytest.mark.django_db


def _spend(ledger, project, hours, start="2026-11-02 00:00:00"):
    """Running time worth ``hours`` × 10.00 (one whole GPU at 10.00 per hour)."""
    begin = at(start)
    return ledger.run(project, (begin.strftime("%Y-%m-%d %H:%M:%S"), (begin + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")))


def test_each_threshold_fires_once_per_period(ledger, django_user_model, django_capture_on_commit_callbacks):
    price("10.00")
    project = ledger.project("acme")
    owner = django_user_model.objects.create_user("olive", email="olive@example.com")
    Membership.objects.create(tenant=project.tenant, user=owner, role=Role.OWNER)
    budget = budget_set(
        actor=None, tenant=project.tenant, period="monthly", amount=Decimal("100.00"), thresholds=[50, 80, 100], action="notify"
    )
    now = at("2026-11-20 00:00:00")

    _spend(ledger, project, 5.5, "2026-11-02 00:00:00")  # 55.00
    usage_meter(now=now)
    assert budgets_evaluate(now=now)["alerts"] == 1
    assert budgets_evaluate(now=now)["alerts"] == 0
    _spend(ledger, project, 3, "2026-11-05 00:00:00")  # 85.00
    usage_meter(now=now)
    assert budgets_evaluate(now=now)["alerts"] == 1
    _spend(ledger, project, 2, "2026-11-08 00:00:00")  # 105.00
    usage_meter(now=now)
    assert budgets_evaluate(now=now)["alerts"] == 1
    assert budgets_evaluate(now=now)["alerts"] == 0
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]
    assert Notification.objects.filter(tenant=project.tenant).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        budgets_evaluate(now=now)  # fires nothing more, mails nothing more
    assert mail.outbox == []
    UsageRecord.objects.all().delete()
    BudgetAlert.objects.all().delete()
    _spend(ledger, project, 11, "2026-11-10 00:00:00")
    usage_meter(now=now)
    with django_capture_on_commit_callbacks(execute=True):
        assert budgets_evaluate(now=now)["alerts"] == 3
    assert [m.to for m in mail.outbox] == [["olive@example.com"]] * 3
    assert "threshold 100%" in mail.outbox[-1].body

    # A new month is a new period: the 50 % fires again once spending passes it.
    december = at("2026-12-20 00:00:00")
    _spend(ledger, project, 6, "2026-12-02 00:00:00")
    usage_meter(now=december)
    assert budgets_evaluate(now=december)["alerts"] == 1
    assert BudgetAlert.objects.filter(budget=budget).count() == 4


def test_forecast_adds_the_burn_rate_until_the_period_ends(ledger):
    price("10.00")
    project = ledger.project("acme")
    budget = budget_set(
        actor=None,
        tenant=project.tenant,
        period="total",
        amount=Decimal("1000"),
        thresholds=[100],
        action="notify",
        starts_at=at("2026-01-01 00:00:00"),
    )
    _spend(ledger, project, 2, "2026-11-02 00:00:00")
    usage_meter(now=at("2026-11-03 00:00:00"))
    assert budget_forecast(budget, now=at("2026-11-03 00:00:00")) == Decimal("20.00")


@pytest.fixture
def hard(fleet):
    """A tenant on a real agent with running offline, interruptible and realtime work, and a price."""
    price("10.00")
    tenant, project, user, _ = fleet.tenant("acme")
    work = {
        p: allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=30, memory_mib=100, priority=p)[0]
        for p in ("offline", "interruptible", "realtime")
    }
    assert {a.state for a in work.values()} == {Allocation.State.RUNNING}
    return fleet, tenant, project, user, work


def _overspend(tenant, project, budget_amount, action, grace=3600):
    budget = budget_set(
        actor=None,
        tenant=tenant,
        project=project,
        period="monthly",
        amount=Decimal(budget_amount),
        thresholds=[100],
        action=action,
        grace_seconds=grace,
    )
    usage_meter(now=timezone.now() + timedelta(hours=1))  # each slice's first hour closes
    assert UsageRecord.objects.filter(tenant=tenant).exists()
    UsageRecord.objects.filter(tenant=tenant).update(amount=Decimal(budget_amount))  # as if it had run long
    return budget


def _states(work):
    return {p: Allocation.objects.get(id=a.id).state for p, a in work.items()}


def _ask(tenant, project, user, **kwargs):
    return allocation_request(actor=user, tenant=tenant, project=project, count=1, compute_units=10, memory_mib=100, **kwargs)[0]


def test_notify_only_stops_and_refuses_nothing(hard):
    fleet, tenant, project, user, work = hard
    _overspend(tenant, None, "1.00", "notify")
    assert budgets_evaluate()["stopped"] == 0
    assert set(_states(work).values()) == {"running"}
    assert _ask(tenant, project, user).state == "running"


def test_refuse_refuses_new_work_and_stops_nothing(hard):
    fleet, tenant, project, user, work = hard
    _overspend(tenant, project, "1.00", "refuse")
    assert budgets_evaluate()["stopped"] == 0
    with pytest.raises(Refused) as refused:
        _ask(tenant, project, user)
    assert refused.value.extra["code"] == "budget_exhausted"
    assert set(_states(work).values()) == {"running"}


def test_a_lease_that_would_overrun_the_budget_is_refused(hard):
    fleet, tenant, project, user, work = hard
    budget_set(actor=None, tenant=tenant, project=None, period="monthly", amount=Decimal("5.00"), thresholds=[100], action="refuse")
    # 10 units of a 10.00 GPU = 1.00 an hour: 4 h fits in 5.00, 6 h does not.
    assert _ask(tenant, project, user, lease_seconds=4 * 3600).state == "running"
    with pytest.raises(Refused) as refused:
        _ask(tenant, project, user, lease_seconds=6 * 3600)
    assert refused.value.extra["code"] == "budget_would_overrun" and refused.value.extra["asked"] == "6.00"


def test_stop_borrowed_stops_offline_and_interruptible_only(hard):
    fleet, tenant, project, user, work = hard
    _overspend(tenant, project, "1.00", "stop_borrowed")
    assert budgets_evaluate()["stopped"] == 2
    assert _states(work) == {"offline": "released", "interruptible": "released", "realtime": "running"}
    assert "budget" in Allocation.objects.get(id=work["offline"].id).reason
    assert len(fleet.claims()) == 1


def test_stop_all_waits_for_the_grace_period(hard):
    fleet, tenant, project, user, work = hard
    _overspend(tenant, None, "1.00", "stop_all", grace=600)
    assert budgets_evaluate()["stopped"] == 0
    assert set(_states(work).values()) == {"running"}
    assert budgets_evaluate(now=timezone.now() + timedelta(seconds=601))["stopped"] == 3
    assert set(_states(work).values()) == {"released"} and fleet.claims() == []
    assert Budget.objects.get().action == "stop_all"
