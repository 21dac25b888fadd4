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
from tenants.authentication import TokenAuthMiddleware  # noqa: E402


def _websocket_stack(inner):
    """Session (browsers) or bearer token (API clients); a browser's Origin must be one of ours."""
    authenticated = AuthMiddlewareStack(TokenAuthMiddleware(inner))

    async def app(scope, receive, send):
        # Machines send no Origin; browsers always do, and must match ALLOWED_HOSTS.
        if any(name == b"origin" for name, _ in scope.get("headers", [])):
            return await AllowedHostsOriginValidator(authenticated)(scope, receive, send)
        return await authenticated(scope, receive, send)

    return app


protocols = {
    "http": django_asgi_app,
    "websocket": _websocket_stack(URLRouter(websocket_urlpatterns)),
}
if settings.OCENTER_EMBEDDED_JOBS:
    from ocenter.jobs import LifespanJobs

    protocols["lifespan"] = LifespanJobs()

application = ProtocolTypeRouter(protocols)

from ocenter.lib.warm import warm  # noqa: E402

warm()
