"""Queue order: priority class, then fair share between tenants, then age; flooding starves no one."""

import pytest

from pools.queueing import Waiting, order


def w(id, tenant, priority="offline", created=0.0, units=100, mib=1000):
    return Waiting(id, tenant, priority, created, units, mib)


def test_priority_class_first_then_age():
    queue = [w("o1", "a", "offline", 1), w("r1", "a", "realtime", 5), w("i1", "a", "interruptible", 2), w("o0", "a", "offline", 0)]
    assert [x.id for x in order(queue, {}, total_units=1000, total_mib=10000)] == ["r1", "i1", "o0", "o1"]


def test_a_flooding_tenant_is_interleaved_with_the_others():
    flood = [w(f"a{i}", "a", created=i) for i in range(10)]
    late = [w("b0", "b", created=100), w("b1", "b", created=101)]
    ordered = [x.id for x in order(flood + late, {}, total_units=1000, total_mib=10000)]
    assert ordered[:4] == ["a0", "b0", "a1", "b1"]


def test_the_tenant_holding_less_goes_first():
    queue = [w("a", "heavy", created=0), w("b", "light", created=1)]
    shares = {"heavy": 0.5, "light": 0.1}
    assert [x.id for x in order(queue, shares, total_units=1000, total_mib=10000)] == ["b", "a"]


def test_weights_scale_the_share():
    queue = [w("a", "big", created=0), w("b", "small", created=1)]
    shares = {"big": 0.4, "small": 0.3}
    assert [x.id for x in order(queue, shares, total_units=1000, total_mib=10000, weights={"big": 2.0})] == ["a", "b"]


def _greedy(waiting, shares, *, total_units, total_mib, weights=None):
    """The order as first written: take the smallest (class, share, age) head, add its size, again (O(n²)).

    A tenant's share is its share now plus the sizes of its requests taken, those summed on their own (the rounding SQL's
    running SUM has, so the database can give one request's position without reading the queue out).
    """
    from pools.queueing import PRIORITY_RANK, dominant_share

    weights, taken = weights or {}, {}
    remaining = sorted(waiting, key=lambda x: (PRIORITY_RANK[x.priority], x.created_at))
    result = []
    while remaining:
        best = min(
            range(len(remaining)),
            key=lambda i: (
                PRIORITY_RANK[remaining[i].priority],
                (shares.get(remaining[i].tenant_id, 0.0) + taken.get(remaining[i].tenant_id, 0.0))
                / weights.get(remaining[i].tenant_id, 1.0),
                remaining[i].created_at,
            ),
        )
        item = remaining.pop(best)
        result.append(item)
        taken[item.tenant_id] = taken.get(item.tenant_id, 0.0) + dominant_share(item.compute_units, item.memory_mib, total_units, total_mib)
    return result


def test_the_sort_is_the_greedy():
    """Random queues (ties in age and size included): the one sort gives exactly the greedy's order."""
    import random

    PRIORITIES, UNITS, MIBS = ["realtime", "interruptible", "offline"], [25, 50, 100, 200], [1000, 4000, 16000]
    rng = random.Random(13)
    for _ in range(300):
        tenants = [f"t{i}" for i in range(rng.randint(1, 6))]
        queue = [
            w(i, rng.choice(tenants), rng.choice(PRIORITIES), float(rng.randint(0, 20)), rng.choice(UNITS), rng.choice(MIBS))
            for i in range(rng.randint(0, 60))
        ]
        shares = {t: rng.choice([0.0, 0.05, 0.1, 0.3]) for t in tenants if rng.random() < 0.7}
        weights = {t: rng.choice([0.5, 1.0, 2.0]) for t in tenants if rng.random() < 0.5}
        kwargs = {"total_units": 2000, "total_mib": 80000, "weights": weights}
        assert [x.id for x in order(queue, shares, **kwargs)] == [x.id for x in _greedy(queue, shares, **kwargs)]


def test_recent_use_is_summed_by_the_database_as_the_formula_says(fleet):
    """tenant_shares: each ended allocation's dominant share × min(ran, half-life)/half-life × ½ per half-life since."""

    from django.utils import timezone

    from pools.models import Accelerator, Allocation
    from pools.queueing import dominant_share
    from pools.selectors import RECENT_USE_HALF_LIFE, tenant_shares

    acme, acme_project, _, _ = fleet.tenant("acme")
    globex, globex_project, _, _ = fleet.tenant("globex")
    now = timezone.now()
    half = RECENT_USE_HALF_LIFE
    histories = {  # (count, units, mib, started, ended)
        acme: [(1, 100, 40000, now - 3 * half, now - half), (2, 25, 1000, now - half / 4, now - half / 8)],
        globex: [(1, 50, 80000, now - 2 * half, now - 2 * half + half / 2), (1, 100, 1000, now - 9 * half, now - 7 * half)],
    }
    project = {acme: acme_project, globex: globex_project}
    for tenant, rows in histories.items():
        for count, units, mib, started, ended in rows:
            Allocation.objects.create(tenant=tenant, project=project[tenant], count=count, compute_units=units, memory_mib=mib,
                                      state=Allocation.State.RELEASED, started_at=started, ended_at=ended)  # fmt: skip
    gpus = Accelerator.objects.filter(gone_at=None)
    total_units, total_mib = 100 * gpus.count(), sum(g.memory_mib for g in gpus)

    def expected(rows):
        return sum(
            min((e - s) / half, 1.0) * 0.5 ** ((now - e) / half) * dominant_share(c * u, c * m, total_units, total_mib)
            for c, u, m, s, e in rows
            if e >= now - 6 * half
        )

    shares = tenant_shares(now)
    assert shares[acme.id] == pytest.approx(expected(histories[acme]), rel=1e-6)  # SQLite counts in days (julianday)
    assert shares[globex.id] == pytest.approx(expected(histories[globex]), rel=1e-6)  # SQLite counts in days (julianday)
    assert shares[acme.id] > 0.1 and shares[globex.id] > 0.01


def test_the_positions_of_a_few_are_their_places_in_the_whole_order(fleet, monkeypatch):
    """``queue_positions(ids)`` (worked out by PostgreSQL for a page or one event) gives what the whole order gives."""
    import random

    from django.utils import timezone

    from pools import selectors
    from pools.models import Allocation

    rng = random.Random(5)
    tenants = [fleet.tenant(f"t{i}")[:2] for i in range(5)]
    shares = {tenants[0][0].id: 0.1, tenants[1][0].id: 0.3, tenants[2][0].id: 0.1 + 0.2}  # 0.1 + 0.2 != 0.3 in floats
    monkeypatch.setattr(selectors, "tenant_shares", lambda **kwargs: shares)
    moment = timezone.now()
    queued = []
    for _ in range(300):
        tenant, project = rng.choice(tenants)
        queued.append(Allocation(tenant=tenant, project=project, state=Allocation.State.QUEUED,
                                 priority=rng.choice(["realtime", "interruptible", "offline"]), count=rng.choice([1, 2]),
                                 compute_units=rng.choice([10, 25, 50, 100]), memory_mib=rng.choice([1000, 4000, 40000])))  # fmt: skip
    Allocation.objects.bulk_create(queued)
    Allocation.objects.filter(id__in=[a.id for a in queued[::3]]).update(created_at=moment)  # ties in age go by id
    whole = selectors.queue_positions()
    assert sorted(whole.values()) == list(range(1, 301))
    few = [a.id for a in rng.sample(queued, 40)]
    assert selectors.queue_positions(few) == {i: whole[i] for i in few}
    assert selectors.queue_positions([]) == {}


def test_recent_use_is_summed_again_only_once_it_is_old(fleet, settings):
    from datetime import timedelta

    from django.utils import timezone

    from pools.models import Allocation
    from pools.selectors import tenant_shares

    tenant, project, _, _ = fleet.tenant("acme")
    now = timezone.now()

    def ended():
        Allocation.objects.create(tenant=tenant, project=project, compute_units=100, memory_mib=1000, state=Allocation.State.RELEASED,
                                  started_at=now - timedelta(minutes=30), ended_at=now - timedelta(minutes=1))  # fmt: skip

    ended()
    first = tenant_shares()[tenant.id]  # summed now (tests sum every time), and kept
    settings.OCENTER_SHARES_SECONDS = 3600
    ended()
    assert tenant_shares()[tenant.id] == first  # summed a moment ago: not again
    assert tenant_shares(now)[tenant.id] == pytest.approx(2 * first, rel=1e-3)  # a moment asked for is summed for it
    settings.OCENTER_SHARES_SECONDS = 0
    assert tenant_shares()[tenant.id] == pytest.approx(2 * first, rel=1e-3)
