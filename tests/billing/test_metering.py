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
    # 40 GiB × 0.50 × 2 h = 40.00
    assert _records() == [(Decimal("7200"), Decimal("40.000000"))]


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


def test_running_work_is_metered_up_to_now_and_continued_later(ledger):
    price("3.60")
    alloc = ledger.run(ledger.project("acme"), ("2026-11-03 10:00:00", None), ended=None)
    usage_meter(now=at("2026-11-03 10:10:00"))
    usage_meter(now=at("2026-11-03 10:15:00"))
    # 600 s then 300 s at 0.001 per second
    assert _records(alloc) == [(Decimal("600"), Decimal("0.600000")), (Decimal("300"), Decimal("0.300000"))]


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
        "2026-11-03 10:14:59",
        "2026-11-03 10:29:00",
        "2026-11-03 10:44:00.777777",
        "2026-11-03 23:59:59.5",
        "2026-11-04 00:03:00",
    ]
    bulk, exact = _meter_both_ways(ledger, monkeypatch, runs)
    assert bulk == exact
    # 6 runs × 4 running slices, +4 at the price change, +4 at midnight; the ended one: 3 runs, a cut, its end.
    assert len(bulk) == 4 * (6 + 2) + 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk path is PostgreSQL's")
def test_a_steady_run_is_written_in_bulk_and_never_twice(ledger, monkeypatch):
    from billing import services

    price("3.60")
    project = ledger.project("acme")
    for i in range(3):
        ledger.run(project, ("2026-11-03 10:00:00", None), ended=None, gpu=i)
    assert usage_meter(now=at("2026-11-03 10:01:00")) == 3  # first run: slice by slice
    exact = services._meter_exact

    def nothing_left(book, now, tz):
        records = exact(book, now, tz)
        assert records == [], "a steady run leaves nothing to the slice-by-slice path"
        return records

    monkeypatch.setattr(services, "_meter_exact", nothing_left)
    assert usage_meter(now=at("2026-11-03 10:02:00")) == 3
    assert usage_meter(now=at("2026-11-03 10:02:00")) == 0
    assert sorted(set(_records())) == [(Decimal("60"), Decimal("0.060000"))]
