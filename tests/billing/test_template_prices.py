"""Prices per template: a price that names a template (an Ascend vNPU's vir05_1c_16g) prices the slices cut to it,
in every path that prices work: metering (slice by slice and in bulk), spend not yet metered, statements, the API."""

from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import Price, UsageRecord
from billing.selectors import unmetered
from billing.services import price_set, statement_lines, usage_meter
from ocenter.errors import Conflict, Unprocessable
from pools.models import Accelerator
from tests.billing.conftest import at, price

SMALL = {"name": "vir05_1c_16g", "compute_units": 25, "memory_mib": 16384}
LARGE = {"name": "vir10_3c_32g", "compute_units": 50, "memory_mib": 32768}


@pytest.fixture
def npus(ledger):
    """The ledger's GPUs are Ascend NPUs cut to two templates."""
    Accelerator.objects.update(vendor="Huawei", model="Ascend-910B", memory_mib=65536, templates=[SMALL, LARGE])
    return ledger


def _prices():
    price("8.00", accelerator_model="Ascend-910B")  # per NPU-hour, any shape
    price("12.00", accelerator_model="Ascend-910B", template="vir05_1c_16g")  # the small template costs more per unit


def _hour_of(npus, template, units, gpu):
    project = npus.project("acme")
    return npus.run(project, ("2026-11-03 10:00:00", "2026-11-03 11:00:00"), units=units, mib=16384, template=template, gpu=gpu)


def test_a_template_price_wins_for_the_slices_cut_to_it_and_only_for_them(npus):
    _prices()
    small = _hour_of(npus, "vir05_1c_16g", 25, gpu=0)
    large = _hour_of(npus, "vir10_3c_32g", 50, gpu=1)
    whole = _hour_of(npus, "", 100, gpu=2)
    assert usage_meter(now=at("2026-11-03 12:00:00")) == 3
    records = {r.allocation_id: r for r in UsageRecord.objects.all()}
    assert (records[small.id].amount, records[small.id].template) == (Decimal("3.000000"), "vir05_1c_16g")  # ¼ × 12.00
    assert (records[large.id].amount, records[large.id].template) == (Decimal("4.000000"), "vir10_3c_32g")  # ½ × 8.00
    assert (records[whole.id].amount, records[whole.id].template) == (Decimal("8.000000"), "")


def test_a_statement_has_a_line_per_template(npus):
    _prices()
    for gpu in (0, 1):
        _hour_of(npus, "vir05_1c_16g", 25, gpu=gpu)
    _hour_of(npus, "vir10_3c_32g", 50, gpu=2)
    usage_meter(now=at("2026-11-03 12:00:00"))
    lines = statement_lines(tenant=npus.project("acme").tenant, month=at("2026-11-01 00:00:00"))
    assert [(line["template"], line["amount"], line["description"]) for line in lines] == [
        ("vir05_1c_16g", Decimal("6.00"), "main · bj · Ascend-910B · vir05_1c_16g · offline"),
        ("vir10_3c_32g", Decimal("4.00"), "main · bj · Ascend-910B · vir10_3c_32g · offline"),
    ]


def test_spend_not_yet_metered_is_priced_by_template(npus):
    _prices()
    project = npus.project("acme")
    npus.run(project, ("2026-11-03 10:00:00", None), units=25, mib=16384, template="vir05_1c_16g", ended=None, gpu=0)
    npus.run(project, ("2026-11-03 10:00:00", None), units=25, mib=16384, ended=None, gpu=1)  # the same shape, no template
    cost = unmetered([project.tenant_id], now=at("2026-11-03 11:00:00"), since=at("2026-11-03 00:00:00"))
    assert cost[project.tenant_id].quantize(Decimal("0.000001")) == Decimal("5.000000")  # 3.00 + 2.00


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk path is PostgreSQL's")
def test_the_bulk_path_prices_each_template_apart(npus, monkeypatch):
    from billing import services

    _prices()
    project = npus.project("acme")
    npus.run(project, ("2026-11-03 10:00:00", None), units=25, mib=16384, template="vir05_1c_16g", ended=None, gpu=0)
    npus.run(project, ("2026-11-03 10:00:00", None), units=50, mib=32768, template="vir10_3c_32g", ended=None, gpu=1)
    usage_meter(now=at("2026-11-03 10:01:00"))  # the first run, slice by slice
    exact = services._meter_exact
    monkeypatch.setattr(services, "_meter_exact", lambda book, now, tz: exact(book, now, tz) and pytest.fail("not in bulk"))
    assert usage_meter(now=at("2026-11-03 11:00:30")) == 2
    assert sorted((r.template, r.amount) for r in UsageRecord.objects.all()) == [
        ("vir05_1c_16g", Decimal("3.000000")),
        ("vir10_3c_32g", Decimal("4.000000")),
    ]


def test_a_template_price_names_its_model_and_one_of_its_templates(npus):
    when = at("2026-12-01 00:00:00")
    with pytest.raises(Unprocessable, match="names its model"):
        price_set(actor=None, template="vir05_1c_16g", compute_gpu_hour=Decimal(1), effective_from=when)
    with pytest.raises(Unprocessable, match="cut to vir05_1c_16g, vir10_3c_32g, not to 'vir05_1c_61g'") as refused:
        price_set(actor=None, accelerator_model="Ascend-910B", template="vir05_1c_61g", compute_gpu_hour=Decimal(1), effective_from=when)
    assert refused.value.field == "template"
    kept = price_set(actor=None, accelerator_model="Ascend-910B", template="vir05_1c_16g", compute_gpu_hour=Decimal(1), effective_from=when)
    assert str(kept) == "Ascend-910B / vir05_1c_16g from 2026-12-01 00:00"
    with pytest.raises(Conflict):
        price_set(actor=None, accelerator_model="Ascend-910B", template="vir05_1c_16g", compute_gpu_hour=Decimal(2), effective_from=when)
    # The model's own price at the same moment is another price.
    price_set(actor=None, accelerator_model="Ascend-910B", compute_gpu_hour=Decimal(2), effective_from=when)
    assert Price.objects.count() == 2


def test_the_api_sets_and_filters_prices_by_template(npus, staff):
    api = APIClient()
    api.force_login(staff)
    body = {
        "accelerator_model": "Ascend-910B",
        "template": "vir05_1c_16g",
        "compute_gpu_hour": "12.00",
        "effective_from": "2026-12-01T00:00Z",
    }
    created = api.post("/api/v1/prices", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["template"] == "vir05_1c_16g"
    api.post("/api/v1/prices", {**body, "template": "", "compute_gpu_hour": "8.00"}, format="json")
    listed = api.get("/api/v1/prices", {"template": "vir05_1c_16g"}).json()["results"]
    assert [p["compute_gpu_hour"] for p in listed] == ["12.0000"]
    wrong = api.post("/api/v1/prices", {**body, "template": "vir99"}, format="json")
    assert wrong.status_code == 422 and wrong["Content-Type"] == "application/problem+json"
    assert "name one of them" in wrong.json()["detail"]


def test_staff_price_a_template_in_the_console_and_a_wrong_one_is_named(client, staff, npus):
    from django.urls import reverse

    client.force_login(staff)
    form = {"accelerator_model": "Ascend-910B", "template": "vir05_1c_16g", "compute_gpu_hour": "12", "effective_from": "2026-12-01 00:00"}
    assert client.post(reverse("billing:console"), {**form, "memory_gib_hour": "0"}).status_code == 302
    page = client.get(reverse("billing:console")).content.decode()
    assert "<td>vir05_1c_16g</td>" in page
    wrong = client.post(reverse("billing:console"), {**form, "memory_gib_hour": "0", "template": "vir5"})
    assert wrong.status_code == 200 and "not to &#x27;vir5&#x27;: name one of them" in wrong.content.decode()
    assert Price.objects.count() == 1
