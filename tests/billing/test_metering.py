"""Exact metering with a controlled clock; every amount worked out by hand."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing.models import SliceMeter, UsageRecord
from billing.rating import to_cents
from billing.services import usage_meter
from tests.billing.conftest import at, price

pytestmark = pytest.mark.django_db


def _records(allocation=None):
    records = UsageRecord.objects.order_by("start")
    if allocation:
        records = records.filter(allocation=allocation)
    return [(r.seconds, r.amount) for r in records]


def test_a_90_second_slice_across_a_price_change(ledger):
    price("10.00", since="2026-11-01 00:00:00")
    price("20.00", since="2026-11-03 12:00:30")
    alloc = ledger.run(ledger.project("acme"), ("2026-11-03 12:00:00", "2026-11-03 12:01:30"), units=50)
    assert usage_meter(now=at("2026-11-03 13:00:00")) == 2
    # 30 s at 10.00 × ½ GPU = 0.041666… → 0.041667; 60 s at 20.00 × ½ GPU = 0.166666… → 0.166667
    assert _records(alloc) == [(Decimal("30"), Decimal("0.041667")), (Decimal("60"), Decimal("0.166667"))]
    assert to_cents(sum(a for _, a in _records(alloc))) == Decimal("0.21")


def test_memory_is_priced_per_gib_hour(ledger):
    price("0", memory="0.50")
    ledger.run(ledger.project("acme"), ("2026-11-03 10:00:00", "2026-11-03 12:00:00"), units=10, mib=40960)
    usage_meter(now=at("2026-11-03 13:00:00"))
    # 40 GiB × 0.50 × 2 h = 40.00, an hour a record
    assert _records() == [(Decimal("3600"), Decimal("20.000000"))] * 2


def test_a_preempted_and_requeued_slice_pays_only_its_running_time(ledger):
    price("12.00")
    project = ledger.project("acme")
    victim = ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 10:20:00"), ended="preempted")
    again = ledger.run(project, ("2026-11-03 10:30:00", "2026-11-03 10:45:00"))
    usage_meter(now=at("2026-11-03 11:00:00"))
    assert _records(victim) == [(Decimal("1200"), Decimal("4.000000"))]  # 20 min of a 12.00 GPU
    assert _records(again) == [(Decimal("900"), Decimal("3.000000"))]  # 15 min


def test_a_month_boundary_splits_the_record(ledger):
    price("6.00")
    ledger.run(ledger.project("acme"), ("2026-10-31 23:00:00", "2026-11-01 01:00:00"))
    usage_meter(now=at("2026-11-01 02:00:00"))
    records = list(UsageRecord.objects.order_by("start"))
    assert [(r.day.isoformat(), r.seconds, r.amount) for r in records] == [
        ("2026-10-31", Decimal("3600"), Decimal("6.000000")),
        ("2026-11-01", Decimal("3600"), Decimal("6.000000")),
    ]


def test_running_work_is_written_an_hour_at_a_time_and_its_open_hour_counts_in_spend(ledger):
    from billing.selectors import unmetered

    price("3.60")  # 0.001 a second for a whole GPU
    alloc = ledger.run(ledger.project("acme"), ("2026-11-03 10:00:00", None), ended=None)
    assert usage_meter(now=at("2026-11-03 10:10:00")) == 0
    assert usage_meter(now=at("2026-11-03 10:15:00")) == 0  # the hour is open: nothing written yet
    spent = unmetered([alloc.tenant_id], now=at("2026-11-03 10:15:00"), since=at("2026-11-01 00:00:00"))
    assert spent[alloc.tenant_id] == Decimal("0.9")  # 900 s, counted all the same
    assert usage_meter(now=at("2026-11-03 11:05:00")) == 1
    assert _records(alloc) == [(Decimal("3600"), Decimal("3.600000"))]
    spent = unmetered([alloc.tenant_id], now=at("2026-11-03 11:05:00"), since=at("2026-11-01 00:00:00"))
    assert spent[alloc.tenant_id] == Decimal("0.3")  # the next hour's first 300 s


def test_metering_twice_never_charges_twice(ledger):
    price("10.00")
    ledger.run(ledger.project("acme"), ("2026-11-03 10:00:00", "2026-11-03 11:00:00"))
    now = at("2026-11-03 12:00:00")
    assert usage_meter(now=now) == 1
    assert usage_meter(now=now) == 0
    assert usage_meter(now=at("2026-11-04 12:00:00")) == 0
    assert _records() == [(Decimal("3600"), Decimal("10.000000"))]


def test_a_run_that_dies_halfway_writes_nothing_and_the_next_one_everything_once(ledger, monkeypatch):
    price("10.00")
    project = ledger.project("acme")
    for gpu in range(3):
        ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), gpu=gpu)
    real_save = UsageRecord.save
    from django.db.models import QuerySet

    real_bulk = QuerySet.bulk_create

    def dies(self, objs, *args, **kwargs):
        real_bulk(self, objs[:1], *args, **kwargs)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(QuerySet, "bulk_create", dies)
    with pytest.raises(RuntimeError):
        usage_meter(now=at("2026-11-03 12:00:00"))
    monkeypatch.setattr(QuerySet, "bulk_create", real_bulk)
    assert UsageRecord.objects.count() == 0
    assert usage_meter(now=at("2026-11-03 12:00:00")) == 3
    assert sum(a for _, a in _records()) == Decimal("30.000000") and real_save


def test_the_database_refuses_a_second_charge_for_the_same_moment(ledger):
    price("10.00")
    ledger.run(ledger.project("acme"), ("2026-11-03 10:00:00", "2026-11-03 11:00:00"))
    usage_meter(now=at("2026-11-03 12:00:00"))
    record = UsageRecord.objects.get()
    record.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        record.save()
    if connection.vendor == "postgresql":
        record.start, record.end = at("2026-11-03 10:30:00"), at("2026-11-03 10:45:00")
        with pytest.raises(IntegrityError), transaction.atomic():
            record.save()  # overlapping, not equal: the exclusion constraint
    assert UsageRecord.objects.count() == 1


def test_the_most_specific_price_wins(ledger):
    price("10.00")
    price("4.00", priority="offline")
    price("30.00", pool_name="bj", accelerator_model="A100", priority="realtime")
    project = ledger.project("acme")
    offline = ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), priority="offline")
    realtime = ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), priority="realtime", gpu=1)
    interruptible = ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), priority="interruptible", gpu=2)
    usage_meter(now=at("2026-11-03 12:00:00"))
    assert [_records(a)[0][1] for a in (offline, realtime, interruptible)] == [
        Decimal("4.000000"),
        Decimal("30.000000"),
        Decimal("10.000000"),
    ]


def _meter_both_ways(ledger, monkeypatch, runs):
    """Meter the same running slices with and without the bulk path; return each run's records, in order."""
    from billing import services

    results = []
    for bulk in (True, False):
        UsageRecord.objects.all().delete()
        SliceMeter.objects.all().delete()  # never metered
        if not bulk:
            monkeypatch.setattr(services, "_meter_steady", lambda book, now, tz: [])
        for now in runs:
            usage_meter(now=at(now))
        results.append(
            [
                (r.slice_id, r.start, r.end, r.day, r.seconds, r.amount, r.price_id)
                for r in UsageRecord.objects.order_by("slice_id", "start")
            ]
        )
    return results


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk path is PostgreSQL's")
def test_the_bulk_path_writes_exactly_what_the_slice_by_slice_path_writes(ledger, monkeypatch):
    price("3.70", "0.013")
    price("5.10", "0.021", since="2026-11-03 10:20:00", pool_name="bj")
    project = ledger.project("acme")
    # Odd sizes, so the rounding of the last place is exercised; one ends halfway; the price changes at 10:20, a day at 24:00.
    for i, (units, mib) in enumerate([(7, 3001), (33, 12345), (100, 81920), (1, 1)]):
        ledger.run(project, ("2026-11-03 10:00:00.123457", None), units=units, mib=mib, ended=None, gpu=i)
    ledger.run(project, ("2026-11-03 10:00:00", "2026-11-03 10:31:00.5"), units=13, mib=999, gpu=5)
    runs = [
        "2026-11-03 10:07:13.000001",
        "2026-11-03 10:29:00",
        "2026-11-03 11:00:00.123457",  # on the running slices' hour mark
        "2026-11-03 12:30:00",
        "2026-11-03 23:59:59.5",  # eleven hours late
        "2026-11-04 00:03:00",
    ]
    bulk, exact = _meter_both_ways(ledger, monkeypatch, runs)
    assert bulk == exact
    # Each running slice: to the price change, to its 11:00 mark, 12 whole hours, to midnight, to its 00:00 mark;
    # the one that ended: to the price change, to its end.
    assert len(bulk) == 4 * 16 + 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk path is PostgreSQL's")
def test_a_steady_run_is_written_in_bulk_and_never_twice(ledger, monkeypatch):
    from billing import services

    price("3.60")
    project = ledger.project("acme")
    for i in range(3):
        ledger.run(project, ("2026-11-03 10:00:00", None), ended=None, gpu=i)
    assert usage_meter(now=at("2026-11-03 10:01:00")) == 0  # first run, slice by slice: the first hours are open
    exact = services._meter_exact

    def nothing_left(book, now, tz):
        records = exact(book, now, tz)
        assert records == [], "a steady run leaves nothing to the slice-by-slice path"
        return records

    monkeypatch.setattr(services, "_meter_exact", nothing_left)
    assert usage_meter(now=at("2026-11-03 11:00:30")) == 3
    assert usage_meter(now=at("2026-11-03 11:00:30")) == 0
    assert usage_meter(now=at("2026-11-03 11:30:00")) == 0
    assert sorted(set(_records())) == [(Decimal("3600"), Decimal("3.600000"))]


def _history(ledger):
    """A day of one tenant's work: a price change, a release, a preemption and its requeue, one demoted, midnight."""
    from pools.models import AllocationEvent

    price("3.70", "0.013")
    price("5.10", "0.021", since="2026-11-03 13:20:00")
    price("2.00", since="2026-11-03 00:00:00", priority="offline")
    project = ledger.project("acme")
    ledger.run(project, ("2026-11-03 10:00:00.5", None), units=7, mib=3001, ended=None)
    ledger.run(project, ("2026-11-03 10:17:00", "2026-11-03 15:31:00.25"), units=33, mib=12345, gpu=1)
    ledger.run(project, ("2026-11-03 09:00:00", "2026-11-03 11:00:00"), ("2026-11-03 12:10:00", None), ended=None, gpu=2)
    demoted = ledger.run(project, ("2026-11-03 11:45:00", None), priority="interruptible", ended=None, gpu=3)
    event = AllocationEvent.objects.create(allocation=demoted, from_state="running", to_state="running",
                                           previous_priority="interruptible", actor_label="test")  # fmt: skip
    AllocationEvent.objects.filter(id=event.id).update(at=at("2026-11-03 14:02:00"))
    type(demoted).objects.filter(id=demoted.id).update(priority="offline")


def _ledger_rows():
    rows = UsageRecord.objects.order_by("slice_id", "start")
    return [(r.slice_id, r.start, r.end, r.day, r.priority, r.seconds, r.amount, r.price_id) for r in rows]


def test_the_same_history_metered_at_any_cadence_is_the_same_ledger_and_the_same_bill(ledger):
    """Every minute, every 7 minutes, or once the next day: the same records, to the microsecond and the cent."""
    from datetime import timedelta

    from billing.services import statement_lines

    _history(ledger)
    start, end = at("2026-11-03 09:00:00"), at("2026-11-04 00:30:00")
    ledgers, bills = [], []
    for step in (timedelta(minutes=1), timedelta(minutes=7, seconds=13), end - start):
        UsageRecord.objects.all().delete()
        SliceMeter.objects.all().delete()
        now = start
        while now < end:
            now = min(now + step, end)
            usage_meter(now=now)
        ledgers.append(_ledger_rows())
        tenant = UsageRecord.objects.first().tenant
        bills.append([(line["description"], line["amount"]) for line in statement_lines(tenant=tenant, month=at("2026-11-01 00:00:00"))])
    assert ledgers[0] == ledgers[1] == ledgers[2]
    assert bills[0] == bills[1] == bills[2]
    # Rows a slice a day: about one an hour, not one a run.
    per_slice = {}
    for row in ledgers[0]:
        per_slice[row[0]] = per_slice.get(row[0], 0) + 1
    assert max(per_slice.values()) <= 26, per_slice


def test_a_demoted_allocation_pays_each_class_for_its_own_time(ledger):
    _history(ledger)
    usage_meter(now=at("2026-11-03 16:00:00"))
    demoted = UsageRecord.objects.filter(slice__accelerator=ledger.gpus[3]).order_by("start")
    rows = [(r.start, r.end, r.priority) for r in demoted]
    assert rows == [
        (at("2026-11-03 11:45:00"), at("2026-11-03 12:45:00"), "interruptible"),
        (at("2026-11-03 12:45:00"), at("2026-11-03 13:20:00"), "interruptible"),  # the price changes
        (at("2026-11-03 13:20:00"), at("2026-11-03 13:45:00"), "interruptible"),
        (at("2026-11-03 13:45:00"), at("2026-11-03 14:02:00"), "interruptible"),
        (at("2026-11-03 14:02:00"), at("2026-11-03 14:45:00"), "offline"),  # moved to offline at 14:02
        (at("2026-11-03 14:45:00"), at("2026-11-03 15:45:00"), "offline"),
    ]
    assert [r.price.compute_gpu_hour for r in demoted][-2:] == [Decimal("2.0000")] * 2
