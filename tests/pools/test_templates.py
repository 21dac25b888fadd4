"""Hardware cut to templates (Ascend vNPUs), end to end: a real agent reports them, oCenter rounds requests up to
them and places fractions on such devices only in their shapes."""

import pytest

from pools.models import Accelerator, Allocation
from pools.services.allocations import allocation_request
from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.factories import PoolFactory
from tests.fleet import Fleet

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATES = [{"name": "vir10_3c_32g", "compute_units": 50, "memory_mib": 32768},
             {"name": "vir05_1c_16g", "compute_units": 25, "memory_mib": 16384}]  # fmt: skip
ASCEND = {"name": "npu{n:02d}", "count": 1, "gpus": 2, "vendor": "Huawei", "model": "Ascend-910B", "memory_mib": 65536,
          "templates": TEMPLATES}  # fmt: skip


@pytest.fixture
def edge(agents, django_user_model):
    fleet = Fleet.__new__(Fleet)
    fleet.agent = agents("edge", [ASCEND, a100_nodes(1, gpus=1)])
    fleet.pool = PoolFactory(name="edge", agent=fleet.agent)
    pool_sync(pool_id=fleet.pool.id)
    fleet.user_model = django_user_model
    return fleet


def _request(tenant, **spec):
    tenant, project, user, _ = tenant
    return allocation_request(actor=user, tenant=tenant, project=project, **{"count": 1, "priority": "offline", **spec})[0]


def test_the_inventorys_templates_are_kept_smallest_first(edge):
    npu = Accelerator.objects.filter(model="Ascend-910B").first()
    assert [t["name"] for t in npu.templates] == ["vir05_1c_16g", "vir10_3c_32g"]
    assert Accelerator.objects.get(model="A100-SXM4-80GB").templates == []


@pytest.mark.parametrize(
    ("asked", "held"),
    [
        ((20, 10_000), (25, 16384, "vir05_1c_16g")),
        ((25, 16384), (25, 16384, "vir05_1c_16g")),
        ((10, 20_000), (50, 32768, "vir10_3c_32g")),  # the memory decides
        ((60, 1000), (100, 1000, "")),  # no template holds it: the whole NPU
    ],
)
def test_a_request_for_templated_hardware_rounds_up_to_the_smallest_template_that_holds_it(edge, asked, held):
    acme = edge.tenant("acme")
    allocation = _request(acme, compute_units=asked[0], memory_mib=asked[1], accelerator_model="Ascend-910B")
    assert allocation.state == Allocation.State.RUNNING, allocation.reason
    assert (allocation.compute_units, allocation.memory_mib, allocation.template) == held
    s = allocation.slices.get()
    assert (s.compute_units, s.memory_mib, s.accelerator.model) == (held[0], held[1], "Ascend-910B")
    if held[2]:
        assert s.env["OCENTER_VNPU_TEMPLATE"] == held[2]  # the agent agrees: the slice is that template
    answer = acme[3].get(f"/api/v1/allocations/{allocation.id}")
    assert answer.json()["template"] == held[2] and answer.json()["compute_units"] == held[0]


def test_a_request_that_may_land_anywhere_puts_no_odd_shape_on_templated_hardware(edge):
    acme = edge.tenant("acme")
    placed = [_request(acme, compute_units=30, memory_mib=1000) for _ in range(3)]
    models = [a.slices.get().accelerator.model for a in placed]
    assert models == ["A100-SXM4-80GB"] * 3 and all(a.template == "" for a in placed)
    # The A100 is full now (90 of 100 units): the fourth waits rather than landing on an NPU in a shape it is not cut to.
    waiting = _request(acme, compute_units=30, memory_mib=1000)
    assert waiting.state == Allocation.State.QUEUED
    # A template's exact shape may land on an NPU without naming it.
    exact = _request(acme, compute_units=25, memory_mib=16384)
    assert exact.state == Allocation.State.RUNNING and exact.slices.get().accelerator.model == "Ascend-910B"


def test_the_lease_estimate_and_the_preview_price_the_template_a_request_is_rounded_up_to(edge):
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from billing.services import budget_set, price_set
    from ocenter.errors import Refused

    acme = edge.tenant("acme")
    tenant, project, user, client = acme
    since = timezone.now() - timedelta(hours=1)
    price_set(actor=None, accelerator_model="Ascend-910B", compute_gpu_hour=Decimal("8.00"), effective_from=since)
    price_set(actor=None, accelerator_model="Ascend-910B", template="vir05_1c_16g", compute_gpu_hour=Decimal("12.00"), effective_from=since)
    budget_set(actor=None, tenant=tenant, project=None, period="monthly", amount=Decimal("10.00"), thresholds=[100], action="refuse")
    # 20 units round up to vir05_1c_16g: 3.00 an hour at its price (2.00 at the model's). Four hours would be 12.00.
    with pytest.raises(Refused) as refused:
        _request(acme, compute_units=20, memory_mib=10_000, accelerator_model="Ascend-910B", lease_seconds=4 * 3600)
    assert refused.value.extra["asked"] == "12.00"
    page = client.get(
        f"/t/acme/allocations/preview/?project={project.id}&count=2&compute_units=20&memory_mib=10000&priority=offline"
        "&accelerator_model=Ascend-910B"
    )
    text = page.content.decode()
    assert page.status_code == 200 and "About 6.00" in text, text
    assert "Rounded up to the template vir05_1c_16g" in text


def _template_rows(page: str) -> list[list[str]]:
    import re

    table = page.split('id="templates"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S)
    return [[re.sub(r"<.*?>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_the_pool_page_lists_each_models_templates_and_how_many_more_fit(edge, client, django_assert_max_num_queries):
    from django.urls import reverse

    staff = edge.user_model.objects.create_user("operator", password="pw-0123456789", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("pools:detail", args=[edge.pool.id])).content.decode()
    assert [[row[1], row[4], row[5]] for row in _template_rows(page)] == [["vir05_1c_16g", "2", "8"], ["vir10_3c_32g", "2", "4"]]
    _request(edge.tenant("acme"), compute_units=20, memory_mib=10_000, accelerator_model="Ascend-910B")
    with django_assert_max_num_queries(7):  # session, user, pool, its summary, nodes, GPUs, slices: no more for templates
        page = client.get(reverse("pools:detail", args=[edge.pool.id])).content.decode()
    # One NPU holds a vir05_1c_16g now: three more of it fit there, and one vir10_3c_32g.
    assert [[row[1], row[5]] for row in _template_rows(page)] == [["vir05_1c_16g", "7"], ["vir10_3c_32g", "3"]]


def test_what_a_constraint_is_cut_to_is_read_once_per_fleet_view(edge, settings, django_assert_num_queries, monkeypatch):
    from pools import selectors

    settings.OCENTER_FLEET_SECONDS = 5
    monkeypatch.setattr(selectors, "_templates_seen", {})
    asked = {"vendor": "", "model": "Ascend-910B", "pool_name": "", "region": ""}
    with django_assert_num_queries(1):
        first = selectors.templates_asked(**asked)
        assert selectors.templates_asked(**asked) == first and [t["name"] for t in first] == ["vir05_1c_16g", "vir10_3c_32g"]
    clock = selectors.time.monotonic() + 5
    monkeypatch.setattr(selectors.time, "monotonic", lambda: clock)
    Accelerator.objects.filter(model="Ascend-910B").update(templates=[])  # the pool synced hardware no longer cut
    with django_assert_num_queries(1):
        assert selectors.templates_asked(**asked) is None  # read again once the fleet view would be
    monkeypatch.setattr(selectors, "_TEMPLATES_KEPT", 3)
    for n in range(5):
        selectors.templates_asked(**{**asked, "model": f"probe-{n}"})
    assert len(selectors._templates_seen) <= 3  # whatever requests name, the memory stays bounded
