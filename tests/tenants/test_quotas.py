"""Quota arithmetic at its edges: used, guaranteed, borrowable, left; who may take the last unit."""

import uuid

import pytest

from ocenter.admission import AdmissionRequest, SliceAsk, UsageRow
from ocenter.errors import Refused
from tenants.models import Quota
from tenants.quotas import check_request, quota_usage

TENANT = uuid.uuid4()
PROJECT = uuid.uuid4()
OTHER_PROJECT = uuid.uuid4()


def _quota(project=None, pool="", model="", g=(0, 0, 0), lim=(0, 0, 0)):
    return Quota(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        project_id=project,
        pool_name=pool,
        accelerator_model=model,
        guarantee_compute_units=g[0],
        guarantee_memory_mib=g[1],
        guarantee_slices=g[2],
        limit_compute_units=lim[0],
        limit_memory_mib=lim[1],
        limit_slices=lim[2],
    )


def _row(units, mib=0, slices=1, priority="offline", project=PROJECT, pool="bj", model="A100"):
    return UsageRow(project, pool, model, priority, units, mib, slices)


def _ask(priority, *slices, usage=(), project=PROJECT):
    return AdmissionRequest(TENANT, project, priority, [SliceAsk(*s) for s in slices], list(usage))


def test_usage_figures():
    quota = _quota(g=(100, 1000, 4), lim=(300, 3000, 10))
    usage = quota_usage(quota, [_row(60, 500, 1, "realtime"), _row(90, 900, 2), _row(5, 5, 1, pool="sh")])
    assert usage.used == {"compute_units": 155, "memory_mib": 1405, "slices": 4}
    assert usage.used_realtime == {"compute_units": 60, "memory_mib": 500, "slices": 1}
    assert usage.borrowed == {"compute_units": 55, "memory_mib": 405, "slices": 0}
    assert usage.borrowable == {"compute_units": 145, "memory_mib": 1595, "slices": 6}
    assert usage.left == {"compute_units": 145, "memory_mib": 1595, "slices": 6}
    assert usage.left_guaranteed == {"compute_units": 40, "memory_mib": 500, "slices": 3}


def test_scoped_quota_counts_only_its_pool_and_model():
    quota = _quota(pool="bj", model="A100", lim=(100, 100, 10))
    rows = [_row(10), _row(20, pool="sh"), _row(30, model="H100"), _row(40, project=OTHER_PROJECT)]
    assert quota_usage(quota, rows).used["compute_units"] == 50


def test_integers_add_exactly_up_to_the_limit():
    quota = _quota(lim=(30, 10**6, 10))
    request = _ask("offline", ("bj", "A100", 20, 1), usage=[_row(10)])
    check_request([quota], request)  # 10 + 20 == 30 fits
    with pytest.raises(Refused) as refused:
        check_request([quota], _ask("offline", ("bj", "A100", 21, 1), usage=[_row(10)]))
    assert refused.value.extra == {
        "code": "quota_exceeded",
        "quota": str(quota.id),
        "dimension": "compute_units",
        "bound": "limit",
        "limit": 30,
        "used": 10,
        "asked": 21,
    }
    assert "the tenant's quota for all pools: its limit is 30 compute units; 10 are held and the request asks 21" in refused.value.detail


def test_realtime_must_fit_the_guarantee_but_offline_may_borrow():
    quota = _quota(g=(100, 10**6, 10), lim=(400, 10**6, 20))
    usage = [_row(80, priority="realtime"), _row(250)]
    check_request([quota], _ask("realtime", ("bj", "A100", 20, 1), usage=usage))
    with pytest.raises(Refused, match="its guarantee is 100 compute units; 80 are held by realtime work"):
        check_request([quota], _ask("realtime", ("bj", "A100", 21, 1), usage=usage))
    check_request([quota], _ask("offline", ("bj", "A100", 70, 1), usage=usage))
    with pytest.raises(Refused, match="limit is 400"):
        check_request([quota], _ask("interruptible", ("bj", "A100", 71, 1), usage=usage))


def test_a_gang_counts_every_slice():
    quota = _quota(lim=(400, 10**6, 3))
    with pytest.raises(Refused) as refused:
        check_request([quota], _ask("offline", *[("bj", "A100", 100, 1)] * 4))
    assert refused.value.extra["dimension"] == "slices" and refused.value.extra["asked"] == 4


def test_project_quota_binds_its_project_only():
    tenant_wide = _quota(lim=(1000, 10**6, 100))
    project = _quota(project=PROJECT, lim=(50, 10**6, 100))
    with pytest.raises(Refused) as refused:
        check_request([tenant_wide, project], _ask("offline", ("bj", "A100", 60, 1)))
    assert refused.value.extra["quota"] == str(project.id)
    check_request([tenant_wide, project], _ask("offline", ("bj", "A100", 60, 1), project=OTHER_PROJECT))


def test_no_quota_for_the_pool_means_no_access():
    only_bj = _quota(pool="bj", lim=(100, 100, 1))
    with pytest.raises(Refused, match="no quota for H100 in pool sh") as refused:
        check_request([only_bj], _ask("offline", ("sh", "H100", 10, 10)))
    assert refused.value.extra["code"] == "no_quota"
    with pytest.raises(Refused, match="no quota"):
        check_request([], _ask("offline", ("bj", "A100", 10, 10)))


def test_zero_limit_refuses_everything_under_it():
    quota = _quota()
    with pytest.raises(Refused):
        check_request([quota], _ask("offline", ("bj", "A100", 1, 1)))


def test_realtime_within_its_guarantee_must_still_fit_the_limit():
    from tenants.quotas import OverLimit

    quota = _quota(g=(1000, 10**6, 100), lim=(1000, 10**6, 100))
    held = [_row(100, 10, 1) for _ in range(10)]  # ten offline slices: the limit is reached
    with pytest.raises(OverLimit) as refused:
        check_request([quota], _ask("realtime", ("bj", "A100", 100, 10), usage=held))
    assert refused.value.needs == [(quota, {"compute_units": 100, "memory_mib": 0, "slices": 0})]
    assert "limit is 1000 compute units; 1000 are held" in refused.value.detail
