"""Publishing to a cross-process channel layer: from a thread with no event loop, in order, without waiting on Redis."""

import asyncio
import os
import threading
import uuid

import pytest
from channels_redis.core import RedisChannelLayer

from ocenter import events


@pytest.mark.redis
def test_events_from_a_plain_thread_reach_redis_in_the_order_published(monkeypatch):
    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]], prefix=f"test-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(events, "get_channel_layer", lambda: layer)
    publishers = set()

    def publish_all():  # what a Celery task or a management command does: no event loop in this thread
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        for n in range(50):
            events.publish(["watchers"], {"kind": "test", "n": n})
        events._sender.flush()  # what runs at exit: returns once all 50 are in Redis
        publishers.add(threading.get_ident())

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("watchers", channel)
        await asyncio.to_thread(publish_all)
        return [(await asyncio.wait_for(layer.receive(channel), 5))["event"]["n"] for _ in range(50)]

    assert asyncio.run(scenario()) == list(range(50))
    assert publishers and events._sender._pid == os.getpid()


def test_an_event_published_from_inside_a_running_event_loop_reaches_the_in_memory_layer(monkeypatch):
    """What the browser tests do without Redis: ORM writes inside Playwright's loop publish their events."""
    from channels.layers import InMemoryChannelLayer

    layer = InMemoryChannelLayer()
    monkeypatch.setattr(events, "get_channel_layer", lambda: layer)

    async def scenario():
        channel = await layer.new_channel()
        await layer.group_add("watchers", channel)
        events.publish(["watchers"], {"kind": "test", "n": 1})  # plain sync code, with this thread's loop running
        return (await asyncio.wait_for(layer.receive(channel), 5))["event"]

    assert asyncio.run(scenario()) == {"kind": "test", "n": 1}
