"""Bearer-token authentication for the northbound API."""

import hmac
from datetime import timedelta

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from ocenter.audit import audit_via
from tenants.models import ApiToken, Membership

# last_used_at is written at most this often per token, not on every request.
LAST_USED_PRECISION = timedelta(seconds=60)


def authenticate_token(raw: str) -> ApiToken:
    """The usable token for ``raw``, or AuthenticationFailed saying why not."""
    # The creator's current role in the token's tenant comes along: Access needs it on every request.
    creator_role = Membership.objects.filter(user=OuterRef("user"), tenant=OuterRef("tenant")).values("role")[:1]
    token = ApiToken.objects.select_related("user").annotate(creator_role=Subquery(creator_role)).filter(prefix=raw[:12]).first()
    if token is None or not hmac.compare_digest(token.secret_hash, ApiToken.hash_secret(raw)):
        raise exceptions.AuthenticationFailed("Invalid API token.")
    now = timezone.now()
    if token.revoked_at:
        raise exceptions.AuthenticationFailed("This API token was revoked; create a new one.")
    if token.expires_at and token.expires_at <= now:
        raise exceptions.AuthenticationFailed("This API token expired; create a new one.")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("The user who made this API token is disabled.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(id=token.id).update(last_used_at=now)
    return token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer ocn_…``: the token's user, with ``request.auth`` the ApiToken."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.lower().startswith("bearer "):
            return None
        token = authenticate_token(header[7:].strip())
        audit_via(f"token {token.prefix}…")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="ocenter"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes the bearer token in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "an API token: ocn_…"}


class TokenAuthMiddleware:
    """Channels middleware: an ``Authorization: Bearer ocn_…`` header on a websocket sets its user and token."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        from channels.db import database_sync_to_async

        headers = dict(scope.get("headers", []))
        value = headers.get(b"authorization", b"").decode(errors="replace")
        if value.lower().startswith("bearer "):
            try:
                token = await database_sync_to_async(authenticate_token)(value[7:].strip())
            except exceptions.AuthenticationFailed:
                from django.contrib.auth.models import AnonymousUser

                scope = {**scope, "user": AnonymousUser(), "api_token": None}
            else:
                scope = {**scope, "user": token.user, "api_token": token}
        return await self.inner(scope, receive, send)
