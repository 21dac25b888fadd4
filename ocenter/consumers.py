"""
The browser's live websocket. Groups are chosen here, from who the user is,
never from anything the client sends; each event is rendered as an HTML
fragment that htmx's websocket extension swaps in by id.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from ocenter.events import STAFF_GROUP


def _render_pool_row(pool_id) -> str:
    from pools.models import Pool
    from pools.selectors import pools_with_summary

    pools = pools_with_summary(Pool.objects.filter(id=pool_id))
    if not pools:
        return ""
    return render_to_string("pools/_pool_row.html", {"pool": pools[0], "oob": True})


RENDERERS = {"pool.updated": lambda event: _render_pool_row(event["pool"])}


class LiveConsumer(AsyncWebsocketConsumer):
    """Pushes the events a user may see, as HTML fragments."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = [STAFF_GROUP] if user.is_staff else []
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """The client has nothing to say that changes what it is sent."""

    async def ocenter_event(self, message):
        render = RENDERERS.get(message["event"].get("kind"))
        if render is None:
            return
        html = await database_sync_to_async(render)(message["event"])
        if html:
            await self.send(text_data=html)
