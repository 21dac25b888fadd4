"""The issue's 'done when': a simulated month, driven by a controlled clock."""

import random
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from billing.models import BudgetAlert, Statement
from billing.services import budget_set, budgets_evaluate, statement_close, usage_meter
from ocenter.errors import Refused
from pools.models import Allocation
from pools.services.allocations import allocation_request
from tests.billing.conftest import at, price

pytestmark = pytest.mark.django_db
CHANGE = at("2026-11-15 00:00:00")
# Prices chosen so every second is worth an exact number of millionths: the test's
# own arithmetic below needs no rounding until the cent.
BEFORE, AFTER, MEMORY = Decimal("7.20"), Decimal("10.80"), Decimal("0.36")


def _expected_cost(units, mib, start, end):
    """Running seconds × prices, worked out here from the history, not from the usage records."""
    total = Decimal(0)
    for a, b, gpu_hour in ((start, min(end, CHANGE), BEFORE), (max(start, CHANGE), end, AFTER)):
        if b > a:
            seconds = Decimal(int((b - a).total_seconds()))
            total += seconds / 3600 * (Decimal(units) / 100 * gpu_hour + Decimal(mib) / 1024 * MEMORY)
    return total


def test_a_simulated_month_bills_to_the_cent_and_alerts_once(ledger):
    price(str(BEFORE), memory=str(MEMORY), since="2026-10-01 00:00:00")
    price(str(AFTER), memory=str(MEMORY), since="2026-11-15 00:00:00")
    rng = random.Random(7)
    projects = [ledger.project("acme", "vision"), ledger.project("acme", "speech"), ledger.project("globex", "llm")]
    budget = budget_set(
        actor=None, tenant=projects[0].tenant, period="monthly", amount=Decimal("600.00"), thresholds=[50, 80, 100], action="notify"
    )
    expected_lines = {}
    for i in range(60):
        project = rng.choice(projects)
        units, mib = rng.choice([25, 50, 100]), 1024 * rng.choice([8, 16, 40])
        start = at("2026-11-01 00:00:00") + timedelta(seconds=rng.randrange(0, 29 * 86400))
        end = start + timedelta(seconds=rng.randrange(60, 20 * 3600))
        priority = rng.choice(["offline", "interruptible", "realtime"])
        ledger.run(
            project, (start.isoformat(sep=" ")[:19], end.isoformat(sep=" ")[:19]), units=units, mib=mib, priority=priority, gpu=i % 8
        )
        key = (project.tenant.slug, f"{project.slug} · bj · A100 · {priority}")
        expected_lines[key] = expected_lines.get(key, Decimal(0)) + _expected_cost(units, mib, start, end)

    day = at("2026-11-01 00:00:00")
    while day <= at("2026-12-01 00:00:00"):  # the beat, one tick a day
        usage_meter(now=day)
        budgets_evaluate(now=day)
        day += timedelta(days=1)
    usage_meter(now=day)  # and once more: nothing twice

    for slug in ("acme", "globex"):
        tenant = projects[0].tenant if slug == "acme" else projects[2].tenant
        statement = statement_close(actor=None, tenant=tenant, month=at("2026-11-01 00:00:00"), now=at("2026-12-02 00:00:00"))
        lines = {line.description: line.amount for line in statement.lines.all()}
        expected = {desc: cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for (s, desc), cost in expected_lines.items() if s == slug}
        assert lines == expected
        assert statement.total == sum(expected.values())
    assert Statement.objects.count() == 2

    acme_spent = sum(v for (s, _), v in expected_lines.items() if s == "acme")
    assert acme_spent > budget.amount  # the month overran, so every threshold was crossed
    alerts = BudgetAlert.objects.filter(budget=budget)
    assert sorted(alerts.values_list("threshold", flat=True)) == [50, 80, 100]


def test_a_project_whose_hard_budget_ran_out_is_refused_and_its_interruptible_work_stopped(fleet):
    price("10.00")
    tenant, llm, user, _ = fleet.tenant("globex")
    running = {
        p: allocation_request(actor=user, tenant=tenant, project=llm, count=1, compute_units=50, memory_mib=100, priority=p)[0]
        for p in ("interruptible", "realtime")
    }
    budget_set(
        actor=None,
        tenant=tenant,
        project=llm,
        period="total",
        amount=Decimal("20.00"),
        thresholds=[50, 80, 100],
        action="stop_borrowed",
        starts_at=at("2026-01-01 00:00:00"),
    )
    # Earlier this month the project ran a whole GPU for 2 h 30 min: 25.00 of its 20.00.
    from tests.billing.conftest import Ledger

    history = Ledger.__new__(Ledger)
    history.pool, history.gpus = fleet.pool, list(fleet.pool.accelerators.order_by("index"))
    history.run(llm, ("2026-11-10 08:00:00", "2026-11-10 10:30:00"))
    usage_meter()
    result = budgets_evaluate()
    assert result["alerts"] == 3 and result["stopped"] == 1
    assert Allocation.objects.get(id=running["interruptible"].id).state == "released"
    assert Allocation.objects.get(id=running["realtime"].id).state == "running"
    with pytest.raises(Refused) as refused:
        allocation_request(actor=user, tenant=tenant, project=llm, count=1, compute_units=10, memory_mib=100)
    assert refused.value.extra["code"] == "budget_exhausted"
    assert budgets_evaluate()["alerts"] == 0
