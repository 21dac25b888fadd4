"""The live websocket: who may connect, which events reach whom, rendered as htmx fragments."""

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from ocenter.asgi import application
from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.factories import PoolFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def _close_executor_connections():
    yield
    await sync_to_async(connections.close_all)()


@sync_to_async
def _session_cookie(username, is_staff):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-123456789", is_staff=is_staff)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _communicator(cookie: bytes | None):
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/live/", headers=headers)


async def test_anonymous_is_refused():
    communicator = _communicator(None)
    connected, code = await communicator.connect()
    assert not connected and code == 4401


async def test_foreign_origin_is_refused():
    cookie = await _session_cookie("op", True)
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie)])
    connected, _ = await communicator.connect()
    assert not connected


async def test_staff_sees_a_pool_row_swap_in_after_a_sync(agents):
    agent = await sync_to_async(agents)("bj", [a100_nodes(1, gpus=4)])
    pool = await sync_to_async(PoolFactory)(agent=agent)
    staff = _communicator(await _session_cookie("op", True))
    outsider = _communicator(await _session_cookie("someone", False))
    assert (await staff.connect())[0] and (await outsider.connect())[0]

    await sync_to_async(pool_sync)(pool_id=pool.id)

    html = await staff.receive_from(timeout=5)
    assert f'id="pool-{pool.id}"' in html and 'hx-swap-oob="true"' in html
    assert "4 × NVIDIA A100-SXM4-80GB" in html and "healthy" in html
    assert await outsider.receive_nothing(timeout=0.5)
    # Whatever a client sends, it is not joined to anything more.
    await outsider.send_to(text_data='{"join": "staff"}')
    await sync_to_async(pool_sync)(pool_id=pool.id)
    assert await outsider.receive_nothing(timeout=0.5)
    await staff.disconnect()
    await outsider.disconnect()
