"""Queue order: priority class, then fair share between tenants, then age; flooding starves no one."""

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
