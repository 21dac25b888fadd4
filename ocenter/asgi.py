"""ASGI entry point: HTTP through Django, websockets through Channels, lifespan for embedded jobs."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")
# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from ocenter.routing import websocket_urlpatterns  # noqa: E402

protocols = {
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
}
if settings.OCENTER_EMBEDDED_JOBS:
    from ocenter.jobs import LifespanJobs

    protocols["lifespan"] = LifespanJobs()

application = ProtocolTypeRouter(protocols)
