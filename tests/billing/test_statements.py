"""Monthly statements: lines by project, pool, model and class; totals to the cent; closed months never change."""

from decimal import Decimal

import pytest

from billing.models import Statement, UsageRecord
from billing.services import adjustment_add, statement_close, statement_lines, usage_meter
from ocenter.errors import Conflict, DomainError
from tests.billing.conftest import at, price

pytestmark = pytest.mark.django_db
NOVEMBER = at("2026-11-01 00:00:00")


def test_lines_round_to_the_cent_and_the_total_adds_up(ledger):
    price("10.00")
    vision, llm = ledger.project("acme", "vision"), ledger.project("acme", "llm")
    # Three 33-unit slices of 100 s each: 0.091667 each; a line is their sum, rounded once.
    for gpu in range(3):
        ledger.run(vision, ("2026-11-03 10:00:00", "2026-11-03 10:01:40"), units=33, gpu=gpu)
    ledger.run(llm, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), units=100, priority="realtime", gpu=3)
    usage_meter(now=at("2026-11-04 00:00:00"))
    lines = statement_lines(tenant=vision.tenant, month=NOVEMBER)
    assert [(line["description"], line["amount"]) for line in lines] == [
        ("llm · bj · A100 · realtime", Decimal("10.00")),
        ("vision · bj · A100 · offline", Decimal("0.28")),  # 3 × 0.091667 = 0.275001 → 0.28
    ]
    assert sum(UsageRecord.objects.filter(project=vision).values_list("amount", flat=True)) == Decimal("0.275001")
    statement = statement_close(actor=None, tenant=vision.tenant, month=NOVEMBER, now=at("2026-12-01 00:00:00"))
    assert statement.total == Decimal("10.28") == sum(line.amount for line in statement.lines.all())


def test_a_month_cannot_close_before_it_ends_nor_twice(ledger):
    tenant = ledger.project("acme").tenant
    with pytest.raises(DomainError, match="has not ended"):
        statement_close(actor=None, tenant=tenant, month=NOVEMBER, now=at("2026-11-30 23:59:59"))
    statement_close(actor=None, tenant=tenant, month=NOVEMBER, now=at("2026-12-01 00:00:00"))
    with pytest.raises(Conflict):
        statement_close(actor=None, tenant=tenant, month=NOVEMBER, now=at("2026-12-02 00:00:00"))


def test_a_closed_statement_never_changes_and_corrections_go_to_an_open_month(ledger):
    price("10.00")
    project = ledger.project("acme")
    ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"))
    usage_meter(now=at("2026-11-04 00:00:00"))
    statement = statement_close(actor=None, tenant=project.tenant, month=NOVEMBER, now=at("2026-12-01 00:00:00"))
    with pytest.raises(Conflict, match="closed"):
        adjustment_add(actor=None, tenant=project.tenant, amount=Decimal("-2.50"), reason="credit", now=at("2026-11-15 00:00:00"))
    adjustment_add(actor=None, tenant=project.tenant, amount=Decimal("-2.50"), reason="credit for an outage", now=at("2026-12-02 00:00:00"))
    statement.refresh_from_db()
    assert statement.total == Decimal("10.00") and statement.lines.count() == 1
    december = statement_lines(tenant=project.tenant, month=at("2026-12-01 00:00:00"))
    assert [(line["description"], line["amount"]) for line in december] == [("adjustment: credit for an outage", Decimal("-2.50"))]
    assert Statement.objects.count() == 1
