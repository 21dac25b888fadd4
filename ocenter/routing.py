from django.urls import path

from ocenter.consumers import EventStreamConsumer, LiveConsumer

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
    path("ws/events/", EventStreamConsumer.as_asgi()),
]
