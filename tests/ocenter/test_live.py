"""Live events over websockets: each tenant receives only its own; API clients get JSON and catch up after a drop."""

import json
from datetime import datetime
from datetime import timezone as dt_timezone

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from ocenter.asgi import application
from pools.models import Accelerator, Allocation, Node, Pool
from pools.services.allocations import allocation_request
from tenants.models import Membership, Project, Role
from tenants.services import quota_set, tenant_create, token_create

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
BIG = dict(
    guarantee_compute_units=1000,
    limit_compute_units=1000,
    guarantee_memory_mib=10**7,
    limit_memory_mib=10**7,
    guarantee_slices=100,
    limit_slices=100,
)


@pytest_asyncio.fixture(autouse=True)
async def _close_executor_connections():
    yield
    await sync_to_async(connections.close_all)()


@sync_to_async
def _world():
    """Two tenants, a member each, and a full pool: every request waits, so no agent is needed."""
    pool = Pool.objects.create(name="full", region="r", agent_url="http://127.0.0.1:9", token_ciphertext="-", status=Pool.Status.HEALTHY)
    node = Node.objects.create(pool=pool, name="n1")
    Accelerator.objects.create(
        pool=pool,
        node=node,
        uuid="GPU-full",
        index=0,
        vendor="NVIDIA",
        model="A100",
        memory_mib=81920,
        allocated_compute_units=100,
        allocated_memory_mib=81920,
    )
    world = {}
    for slug in ("acme", "globex"):
        tenant = tenant_create(actor=None, slug=slug, name=slug)
        project = Project.objects.create(tenant=tenant, slug="main", name="Main")
        quota_set(actor=None, tenant=tenant, project=None, **BIG)
        user = get_user_model().objects.create_user(f"{slug}-user", password="pw-0123456789")
        Membership.objects.create(tenant=tenant, user=user, role=Role.MEMBER)
        client = Client()
        client.force_login(user)
        _, secret = token_create(actor=None, user=user, tenant=tenant, name="ws")
        world[slug] = {
            "tenant": tenant,
            "project": project,
            "user": user,
            "secret": secret,
            "cookie": f"sessionid={client.cookies['sessionid'].value}".encode(),
        }
    return world


@sync_to_async
def _request(who):
    return allocation_request(actor=who["user"], tenant=who["tenant"], project=who["project"], count=1, compute_units=10, memory_mib=10)[0]


def _page_socket(who):
    return WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", who["cookie"])]
    )


def _api_socket(secret, query=""):
    return WebsocketCommunicator(application, f"/ws/events/{query}", headers=[(b"authorization", f"Bearer {secret}".encode())])


async def test_a_tenant_sees_its_own_allocation_appear_and_nothing_of_the_other():
    world = await _world()
    acme, globex = _page_socket(world["acme"]), _page_socket(world["globex"])
    assert (await acme.connect())[0] and (await globex.connect())[0]
    allocation = await _request(world["acme"])
    html = await acme.receive_from(timeout=5)
    assert 'hx-swap-oob="afterbegin:#allocation-rows"' in html and f'id="allocation-{allocation.id}"' in html
    assert 'data-state="queued"' in html and "acme" in html
    assert await globex.receive_nothing(timeout=0.5)
    await acme.disconnect()
    await globex.disconnect()


async def test_the_json_stream_needs_a_token_and_is_scoped_to_its_tenant():
    world = await _world()
    anonymous = WebsocketCommunicator(application, "/ws/events/")
    assert (await anonymous.connect()) == (False, 4401)
    forged = _api_socket("ocn_notarealtoken")
    assert (await forged.connect())[0] is False
    acme = _api_socket(world["acme"]["secret"])
    assert (await acme.connect())[0]
    theirs = await _request(world["globex"])
    mine = await _request(world["acme"])
    event = json.loads(await acme.receive_from(timeout=5))
    assert event["allocation"] == str(mine.id) and event["state"] == "queued" and event["tenant"] == str(world["acme"]["tenant"].id)
    assert await acme.receive_nothing(timeout=0.5)
    assert str(theirs.id) != event["allocation"]
    await acme.disconnect()


async def test_a_dropped_client_catches_up_with_since():
    world = await _world()
    first = _api_socket(world["acme"]["secret"])
    await first.connect()
    await _request(world["acme"])
    seen = json.loads(await first.receive_from(timeout=5))
    await first.disconnect()
    # While it is away: one more for acme, one for globex.
    missed = await _request(world["acme"])
    await _request(world["globex"])
    again = _api_socket(world["acme"]["secret"], f"?since={seen['at'].replace('+', '%2B')}")
    await again.connect()
    replayed = [json.loads(await again.receive_from(timeout=5)) for _ in range(1)]
    assert [(e["allocation"], e["state"], e["replayed"]) for e in replayed] == [(str(missed.id), "queued", True)]
    assert await again.receive_nothing(timeout=0.5)
    await again.disconnect()
    assert await sync_to_async(Allocation.objects.count)() == 3
    assert datetime.fromisoformat(seen["at"]).tzinfo is not None and dt_timezone


async def test_an_idle_flag_redraws_the_row_with_its_badge_for_its_tenant_only():
    from datetime import timedelta

    from django.utils import timezone

    from pools.services.idle import _mark  # the idle service's one step that audits and tells

    world = await _world()
    allocation = await _request(world["acme"])
    acme, globex = _page_socket(world["acme"]), _page_socket(world["globex"])
    assert (await acme.connect())[0] and (await globex.connect())[0]

    @sync_to_async
    def flag():
        Allocation.objects.filter(id=allocation.id).update(state="running")
        allocation.state = "running"
        _mark(allocation, "idle", idle_since=timezone.now() - timedelta(minutes=30), idle_flagged_at=timezone.now())

    await flag()
    html = await acme.receive_from(timeout=5)
    assert f'id="allocation-{allocation.id}"' in html and 'hx-swap-oob="true"' in html and 'data-idle="true"' in html
    assert "#event-feed" not in html  # an idle step redraws the row; the feed is for transitions
    assert await globex.receive_nothing(timeout=0.5)
    await acme.disconnect()
    await globex.disconnect()
