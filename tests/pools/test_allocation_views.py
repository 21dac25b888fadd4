"""Allocation pages: the portal's request form and list, the console's list."""

import pytest
from django.urls import reverse

from pools.models import Allocation

pytestmark = pytest.mark.django_db


def test_a_member_requests_and_releases_from_the_portal(client, fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    client.force_login(user)
    url = reverse("pools:tenant_allocations", args=["acme"])
    response = client.post(
        url, {"project": project.id, "count": 1, "compute_units": 50, "memory_mib": 2048, "priority": "offline"}, follow=True
    )
    allocation = Allocation.objects.get()
    assert allocation.state == Allocation.State.RUNNING
    page = response.content.decode()
    assert f"allocation-{allocation.id}" in page and "running" in page
    client.post(reverse("pools:allocation_release", args=[allocation.id]), {"next": url})
    allocation.refresh_from_db()
    assert allocation.state == Allocation.State.RELEASED and fleet.claims() == []


def test_bad_form_input_is_shown_and_nothing_is_stored(client, fleet):
    tenant, project, user, _ = fleet.tenant("acme")
    client.force_login(user)
    response = client.post(
        reverse("pools:tenant_allocations", args=["acme"]),
        {"project": project.id, "count": 1, "compute_units": 50, "memory_mib": 999999, "priority": "offline"},
    )
    assert "more than any matching GPU has" in response.content.decode()
    assert not Allocation.objects.exists()


def test_other_tenants_pages_and_allocations_are_out_of_reach(client, fleet):
    _, _, _, _ = fleet.tenant("globex")
    _, g_project, g_user, g_api = fleet.tenant("globex2")
    theirs = g_api.post("/api/v1/allocations", {"project": str(g_project.id), "compute_units": 10, "memory_mib": 10}, format="json").json()
    _, _, user, _ = fleet.tenant("acme")
    client.force_login(user)
    assert client.get(reverse("pools:tenant_allocations", args=["globex2"])).status_code == 404
    assert client.post(reverse("pools:allocation_release", args=[theirs["id"]])).status_code == 404
    assert Allocation.objects.get(id=theirs["id"]).state == Allocation.State.RUNNING
    assert client.get(reverse("pools:allocations")).status_code == 403


def test_staff_see_every_allocation(client, fleet, staff):
    _, project, _, api = fleet.tenant("acme")
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 10, "memory_mib": 10}, format="json")
    client.force_login(staff)
    page = client.get(reverse("pools:allocations")).content.decode()
    assert "acme" in page and "running" in page


def test_the_form_says_while_typing_whether_it_fits_what_it_costs_and_where_it_lands(client, fleet):
    from decimal import Decimal

    from django.utils import timezone

    from billing.services import price_set

    price_set(actor=None, compute_gpu_hour=Decimal("16.00"), effective_from=timezone.now() - timezone.timedelta(days=1))
    small = dict(
        guarantee_compute_units=0,
        limit_compute_units=40,
        guarantee_memory_mib=0,
        limit_memory_mib=10**6,
        guarantee_slices=0,
        limit_slices=10,
    )
    tenant, project, user, _ = fleet.tenant("acme", quota=small)
    client.force_login(user)
    url = reverse("request-preview", args=["acme"])
    fits = client.get(url, {"project": project.id, "count": 1, "compute_units": 25, "memory_mib": 1024, "priority": "offline"})
    text = fits.content.decode()
    assert "Fits your quota and budget" in text and "About 4.00 CNY per hour" in text and "bj · A100-SXM4-80GB" in text
    over = client.get(url, {"project": project.id, "count": 1, "compute_units": 50, "memory_mib": 1024, "priority": "offline"})
    assert "its limit is 40 compute units" in over.content.decode()
    assert not Allocation.objects.exists()
    _, _, _, _ = fleet.tenant("globex")
    assert client.get(reverse("request-preview", args=["globex"]), {}).status_code == 404


def test_the_pool_page_shows_who_holds_which_slice_of_which_gpu(client, fleet, staff):
    _, project, _, api = fleet.tenant("acme")
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 2048}, format="json")
    client.force_login(staff)
    page = client.get(reverse("pools:detail", args=[fleet.pool.id])).content.decode()
    assert "acme · 50 units" in page and "50 units · 2 GiB / 80 GiB" in page


def test_the_console_list_filters_like_the_api(client, fleet, staff):
    for slug in ("acme", "globex"):
        _, project, _, api = fleet.tenant(slug)
        api.post(
            "/api/v1/allocations",
            {"project": str(project.id), "compute_units": 10, "memory_mib": 10, "priority": "offline" if slug == "acme" else "realtime"},
            format="json",
        )
    client.force_login(staff)
    url = reverse("pools:allocations")
    assert client.get(url, {"tenant": "acme"}).content.decode().count('<tr id="allocation-') == 1
    assert client.get(url, {"priority": "realtime"}).content.decode().count('<tr id="allocation-') == 1
    assert client.get(url, {"pool": "bj", "state": "running"}).content.decode().count('<tr id="allocation-') == 2
    assert client.get(url, {"state": "queued"}).content.decode().count('<tr id="allocation-') == 0


def test_an_allocations_page_is_its_tenants_and_its_launch_environment_its_requesters(client, fleet, staff):
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Role

    tenant, project, user, api = fleet.tenant("acme")
    answer = api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 2048}, format="json")
    allocation = Allocation.objects.get(id=answer.json()["id"])
    url = reverse("pools:allocation", args=[allocation.id])
    client.force_login(user)
    page = client.get(url).content.decode()
    assert "CUDA_VISIBLE_DEVICES=" in page and 'data-state="running"' in page
    colleague = get_user_model().objects.create_user("acme-colleague")
    Membership.objects.create(tenant=tenant, user=colleague, role=Role.MEMBER)
    client.force_login(colleague)
    page = client.get(url).content.decode()
    assert 'data-state="running"' in page and "CUDA_VISIBLE_DEVICES=" not in page  # a member sees it run, not how to launch on it
    _, _, outsider, _ = fleet.tenant("globex")
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    page = client.get(url).content.decode()
    assert 'data-state="running"' in page and "CUDA_VISIBLE_DEVICES=" not in page
