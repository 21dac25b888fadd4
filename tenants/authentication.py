"""Bearer-token authentication for the northbound API."""

import hmac
import time
from datetime import timedelta
from functools import cache as once

from axes.exceptions import AxesBackendPermissionDenied
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from ocenter.audit import audit_via
from ocenter.lib.rows import columns, fetch, instance
from tenants.models import ApiToken

# last_used_at is written at most this often per token, not on every request.
LAST_USED_PRECISION = timedelta(seconds=60)


@once
def _token_sql() -> str:
    # The token, its user, and the creator's current role in the token's tenant: Access needs all three on every request.
    return (
        f"SELECT {columns(ApiToken, 't')}, {columns(get_user_model(), 'u', 'user__')}, "
        "(SELECT m.role FROM tenants_membership m WHERE m.user_id = t.user_id AND m.tenant_id = t.tenant_id) AS creator_role "
        f"FROM tenants_apitoken t JOIN {get_user_model()._meta.db_table} u ON u.id = t.user_id WHERE t.prefix = %s"
    )


def authenticate_token(raw: str) -> ApiToken:
    """The usable token for ``raw``, or AuthenticationFailed saying why not."""
    rows = fetch(_token_sql(), [raw[:12]])
    token = None
    if rows:
        token = instance(ApiToken, rows[0], user=instance(get_user_model(), rows[0], "user__"))
        token.creator_role = rows[0]["creator_role"]
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


def _window(name: str, period: int) -> tuple[str, int]:
    """(the cache key of ``name``'s counter in the current window of ``period`` seconds, seconds left in the window)."""
    now = time.time()
    return f"{name}:{int(now // period)}", period - int(now % period)


def _count(key: str, period: int) -> int:
    """Add one to the window's counter; its count now (the counter lives out its window, and a second more)."""
    return 1 if cache.add(key, 1, period + 1) else cache.incr(key)


@once
def _rate(text: str) -> tuple[int, int]:
    """DRF's form of a rate, "10000/min": (requests, seconds)."""
    number, unit = text.split("/")
    return int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit[0]]


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer ocn_…``: the token's user, with ``request.auth`` the ApiToken.

    An address that sends ``OCENTER_BAD_TOKENS_PER_MINUTE`` unknown tokens in a minute is answered 429 (with
    Retry-After) until the minute ends: guessing tokens costs a minute a few dozen guesses.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.lower().startswith("bearer "):
            return None
        key, left = _window(f"bad-tokens:{request.META.get('REMOTE_ADDR', '')}", 60)
        if cache.get(key, 0) >= settings.OCENTER_BAD_TOKENS_PER_MINUTE:
            raise exceptions.Throttled(wait=left, detail=f"Too many unknown tokens from your address; try again in {left} s.")
        try:
            token = authenticate_token(header[7:].strip())
        except exceptions.AuthenticationFailed:
            _count(key, 60)
            raise
        audit_via(f"token {token.prefix}…")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="ocenter"'


class PasswordForTokenAuthentication(authentication.BasicAuthentication):
    """HTTP Basic, where a person trades their password for a token (``POST /api/v1/tokens``) and nowhere else:
    a password is not an API credential (each try costs the server a password hash), and django-axes counts its failures."""

    def authenticate(self, request):
        if not authentication.get_authorization_header(request).lower().startswith(b"basic "):
            return None
        if request.method != "POST" or request.path.rstrip("/") != reverse("api:token-list").rstrip("/"):
            raise exceptions.AuthenticationFailed(
                "Basic auth (a password) is only for POST /api/v1/tokens, to get a token: send 'Authorization: Bearer ocn_…' here"
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):  # django-axes refused to check it: answered 429 (ocenter.api)
                raise AxesBackendPermissionDenied("locked out") from None
            raise


class PerTokenThrottle(BaseThrottle):
    """Requests a token may make (``OCENTER_TOKEN_RATE``, 10,000 a minute): one runaway script does not take the API.

    A counter a token a window (one increment a request), not DRF's list of every request's time: at thousands a
    minute that list is read and written whole on every request.
    """

    scope = "per_token"

    def allow_request(self, request, view):
        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        allowed, period = _rate(SimpleRateThrottle.THROTTLE_RATES[self.scope])
        key, self.left = _window(f"rate-token:{token.id}", period)
        return _count(key, period) <= allowed

    def wait(self):
        return self.left


class TokenExchangeThrottle(SimpleRateThrottle):
    """Tokens an address may ask for (``OCENTER_TOKEN_EXCHANGE_RATE``, 30 a minute), whoever it signs in as."""

    scope = "token_exchange"

    def get_cache_key(self, request, view):
        return f"throttle-exchange:{self.get_ident(request)}"


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
