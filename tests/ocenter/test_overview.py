"""The console overview: capacity, fragmentation, queue, spend, in a bounded number of queries."""

import pytest
from django.urls import reverse

from pools.models import Accelerator
from pools.selectors import fragmentation

pytestmark = pytest.mark.django_db


def test_fragmentation_counts_free_room_too_small_for_a_typical_slice(fleet):
    gpus = list(Accelerator.objects.order_by("index"))
    Accelerator.objects.filter(id=gpus[0].id).update(allocated_compute_units=90, allocated_memory_mib=1000)  # 10 units stranded
    Accelerator.objects.filter(id=gpus[1].id).update(allocated_compute_units=50, allocated_memory_mib=1000)  # 50 usable
    assert fragmentation()["stranded_units"] == 10 and fragmentation()["free_units"] == 60


def test_staff_see_the_overview_and_others_do_not(client, fleet, staff, outsider, django_assert_max_num_queries):
    _, project, _, api = fleet.tenant("acme")
    api.post("/api/v1/allocations", {"project": str(project.id), "compute_units": 50, "memory_mib": 1024}, format="json")
    client.force_login(staff)
    with django_assert_max_num_queries(14):
        page = client.get(reverse("console-overview")).content.decode()
    assert "bj" in page and "25% compute" in page and "acme" in page and 'id="event-feed"' in page
    client.force_login(outsider)
    assert client.get(reverse("console-overview")).status_code == 403
