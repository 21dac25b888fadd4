"""Console pool pages: who may see them, what they show, registering a pool."""

import pytest
from django.urls import reverse

from ocenter.models import AuditEntry
from pools.models import Pool
from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["pools:list", "pools:new"])
def test_anonymous_goes_to_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["pools:list", "pools:new"])
def test_outsider_should_have_no_access(client, outsider, name):
    client.force_login(outsider)
    assert client.get(reverse(name)).status_code == 403


def test_outsider_cannot_see_or_sync_a_pool(client, outsider):
    pool = PoolFactory()
    client.force_login(outsider)
    assert client.get(reverse("pools:detail", args=[pool.id])).status_code == 403
    assert client.post(reverse("pools:sync", args=[pool.id])).status_code == 403


def test_staff_sees_pools_with_gpus_by_model(client, staff, agents):
    agent = agents("bj", [a100_nodes(2, gpus=4)])
    pool = PoolFactory(name="bj-a100", agent=agent)
    pool_sync(pool_id=pool.id)
    PoolFactory(name="never-synced")
    client.force_login(staff)
    page = client.get(reverse("pools:list")).content.decode()
    assert "bj-a100" in page and "never-synced" in page
    assert "8 × NVIDIA A100-SXM4-80GB" in page
    assert "640 GiB" in page
    assert "status-healthy" in page and "status-new" in page


def test_pool_list_takes_a_bounded_number_of_queries(client, staff, django_assert_max_num_queries):
    for _ in range(5):
        PoolFactory()
    client.force_login(staff)
    with django_assert_max_num_queries(6):  # session, user, pools, GPU summary
        assert client.get(reverse("pools:list")).status_code == 200


def test_pool_page_lists_nodes_and_their_gpus(client, staff, agents):
    agent = agents("bj", [a100_nodes(2, gpus=2)])
    pool = PoolFactory(agent=agent)
    pool_sync(pool_id=pool.id)
    client.force_login(staff)
    page = client.get(reverse("pools:detail", args=[pool.id])).content.decode()
    assert "n01" in page and "n02" in page
    for gpu in pool.accelerators.all():
        assert gpu.uuid in page
    assert agent.token not in page  # the token is never shown again
    assert "% busy" in page  # utilization, live from the agent


def test_unknown_pool_is_404(client, staff):
    client.force_login(staff)
    assert client.get("/console/pools/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_register_a_pool_with_a_generated_token(client, staff, django_capture_on_commit_callbacks):
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("pools:new"),
            {"name": "gz-a800", "region": "cn-guangzhou", "agent_url": "http://127.0.0.1:9/"},
            REMOTE_ADDR="10.1.2.3",
        )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    token = response.context["token"]
    assert token.startswith("ocp_") and token in response.content.decode()
    pool = Pool.objects.get(name="gz-a800")
    assert pool.agent_url == "http://127.0.0.1:9"
    assert token not in pool.token_ciphertext and pool.agent_token == token
    entry = AuditEntry.objects.get(action="pool.register", object_id=str(pool.id))
    assert entry.actor == staff and entry.source_ip == "10.1.2.3"
    assert token not in str(entry.changes)
    # Registration started a sync right away: nothing listens there.
    assert pool.status == Pool.Status.UNREACHABLE


def test_register_a_pool_with_the_agents_token_syncs_it(client, staff, agents, django_capture_on_commit_callbacks):
    agent = agents("bj", [a100_nodes(1, gpus=2)])
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("pools:new"), {"name": "bj", "region": "cn-beijing", "agent_url": agent.url, "token": agent.token})
    assert response.status_code == 200 and response.context["token"] is None
    pool = Pool.objects.get(name="bj")
    assert pool.status == Pool.Status.HEALTHY and pool.accelerators.count() == 2


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"name": "Bad Name!", "region": "r", "agent_url": "http://x"}, "name", "slug"),
        ({"name": "ok", "region": "r", "agent_url": "ftp://x"}, "agent_url", "valid URL"),
        ({"name": "ok", "region": "", "agent_url": "http://x"}, "region", "required"),
        ({"name": "ok", "region": "r", "agent_url": "http://x", "token": "short"}, "token", "at least 16"),
    ],
)
def test_bad_registration_says_what_to_change_and_stores_nothing(client, staff, data, field, message):
    client.force_login(staff)
    response = client.post(reverse("pools:new"), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Pool.objects.exists() and not AuditEntry.objects.exists()


def test_duplicate_pool_name_is_refused(client, staff):
    PoolFactory(name="bj-a100")
    client.force_login(staff)
    response = client.post(reverse("pools:new"), {"name": "bj-a100", "region": "r", "agent_url": "http://x"})
    assert "already registered" in " ".join(response.context["form"].errors["name"])
    assert Pool.objects.count() == 1


def test_sync_now_updates_the_pool(client, staff, agents):
    agent = agents("bj", [a100_nodes(1, gpus=2)])
    pool = PoolFactory(agent=agent)
    client.force_login(staff)
    response = client.post(reverse("pools:sync", args=[pool.id]))
    assert response.status_code == 302
    pool.refresh_from_db()
    assert pool.status == Pool.Status.HEALTHY
    assert client.get(reverse("pools:sync", args=[pool.id])).status_code == 405
