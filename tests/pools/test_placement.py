"""Placement policies on hand-built fleets, and the choice of preemption victims."""

from decimal import Decimal

from pools.placement import Ask, GpuState, Holder, choose_victims, place


def gpu(id, used=0, pool="p", node=1, model="A100", mib=81920, used_mib=0, cost="1", region="r", vendor="NVIDIA"):
    return GpuState(id, pool, region, node, vendor, model, mib, used, used_mib, Decimal(cost))


def test_binpack_fills_the_fullest_gpu_that_fits_and_leaves_whole_gpus_free():
    fleet = [gpu(1, used=0), gpu(2, used=50), gpu(3, used=80), gpu(4, used=0)]
    assert [g.id for g in place(Ask(1, 20, 1000), fleet)] == [3]
    assert [g.id for g in place(Ask(1, 40, 1000), fleet)] == [2]  # 3 lacks room; 2 before the empty ones


def test_spread_takes_the_emptiest():
    fleet = [gpu(1, used=10), gpu(2, used=50), gpu(3, used=0)]
    assert [g.id for g in place(Ask(1, 20, 1000, policy="spread"), fleet)] == [3]


def test_cheapest_follows_price_then_packs():
    fleet = [gpu(1, cost="3.0"), gpu(2, cost="0.8", used=30), gpu(3, cost="0.8", used=60), gpu(4, cost="1.5")]
    assert [g.id for g in place(Ask(1, 20, 1000, policy="cheapest"), fleet)] == [3]


def test_memory_counts_as_much_as_compute():
    fleet = [gpu(1, used=10, used_mib=80000), gpu(2, used=60)]
    assert [g.id for g in place(Ask(1, 10, 4000), fleet)] == [2]


def test_constraints_come_before_policy():
    fleet = [gpu(1, used=90, model="H100", pool="sh"), gpu(2, pool="bj", region="north"), gpu(3, vendor="Huawei", model="910B")]
    assert [g.id for g in place(Ask(1, 10, 100, model="A100"), fleet)] == [2]
    assert [g.id for g in place(Ask(1, 10, 100, vendor="huawei"), fleet)] == [3]
    assert place(Ask(1, 10, 100, pool="sh", model="A100"), fleet) is None
    assert [g.id for g in place(Ask(1, 10, 100, allowed=frozenset({("sh", "")})), fleet)] == [1]


def test_a_gang_is_all_or_nothing():
    fleet = [gpu(1), gpu(2), gpu(3, used=50)]
    assert place(Ask(3, 100, 1000), fleet) is None
    assert sorted(g.id for g in place(Ask(2, 100, 1000), fleet)) == [1, 2]


def test_a_gang_stays_in_one_pool_and_prefers_one_node():
    fleet = [gpu(1, pool="a", node=1), gpu(2, pool="b", node=2), gpu(3, pool="b", node=3), gpu(4, pool="b", node=3)]
    chosen = place(Ask(2, 100, 1000), fleet)
    assert {g.pool for g in chosen} == {"b"} and {g.node for g in chosen} == {3}
    assert place(Ask(2, 100, 1000, pool="a"), fleet) is None


def test_placement_is_quick_on_ten_thousand_gpus():
    import time

    fleet = [gpu(i, used=(i * 37) % 100, node=i // 8, pool=f"p{i % 3}") for i in range(10_000)]
    started = time.perf_counter()
    assert place(Ask(1, 25, 10000), fleet) is not None
    assert time.perf_counter() - started < 0.5  # a guard against quadratic work, not a benchmark


def holder(id, priority, created, *slices):
    return Holder(id, priority, created, tuple(slices))


def test_victims_are_the_fewest_that_make_room():
    fleet = [gpu(1, used=100), gpu(2, used=100)]
    holders = [
        holder("a", "offline", 1, (1, 50, 0)),
        holder("b", "offline", 2, (1, 50, 0)),
        holder("c", "offline", 3, (2, 100, 0)),
    ]
    placement, victims = choose_victims(Ask(1, 80, 1000), fleet, holders)
    assert [g.id for g in placement] == [2] and [v.allocation_id for v in victims] == ["c"]


def test_offline_goes_before_borrowed_interruptible_and_youngest_first():
    fleet = [gpu(1, used=100)]
    holders = [
        holder("old-offline", "offline", 1, (1, 40, 0)),
        holder("young-offline", "offline", 5, (1, 40, 0)),
        holder("interruptible", "interruptible", 9, (1, 20, 0)),
    ]
    _, victims = choose_victims(Ask(1, 40, 100), fleet, holders)
    assert [v.allocation_id for v in victims] == ["young-offline"]
    _, victims = choose_victims(Ask(1, 90, 100), fleet, holders)
    assert [v.allocation_id for v in victims] == ["young-offline", "old-offline", "interruptible"]


def test_no_victims_when_reclaiming_everything_is_not_enough():
    fleet = [gpu(1, used=100)]
    assert choose_victims(Ask(1, 60, 100), fleet, [holder("a", "offline", 1, (1, 50, 0))]) is None


def test_a_gang_reclaims_across_gpus_of_one_pool():
    fleet = [gpu(1, used=100), gpu(2, used=100), gpu(3, used=100, pool="other")]
    holders = [holder("two-gpus", "offline", 1, (1, 100, 0), (2, 100, 0)), holder("x", "offline", 2, (3, 100, 0))]
    placement, victims = choose_victims(Ask(2, 100, 1000), fleet, holders)
    assert sorted(g.id for g in placement) == [1, 2] and [v.allocation_id for v in victims] == ["two-gpus"]


def test_the_smallest_asks_are_held_by_every_gpu_with_room_for_any_shape():
    from pools.placement import smallest

    shapes = [
        Ask(count=2, compute_units=50, memory_mib=4096, model="A100"),
        Ask(count=1, compute_units=10, memory_mib=8192),
        Ask(count=1, compute_units=100, memory_mib=40960),
        Ask(count=1, compute_units=100, memory_mib=1024),
    ]
    assert sorted((a.compute_units, a.memory_mib) for a in smallest(shapes)) == [(10, 4096), (100, 1024)]
    assert all(a.count == 1 and not a.model for a in smallest(shapes))
    assert smallest([]) == []
