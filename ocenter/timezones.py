"""
Each person's time zone: the browser's, which ``static/js/ocenter.js`` keeps
in the ``ocenter_tz`` cookie. Pages show every time in it, and say which it is
(the top bar); a zone the server does not know, or none yet, is the
platform's ``TIME_ZONE``.
"""

import zoneinfo
from contextlib import nullcontext
from urllib.parse import unquote

from django.utils import timezone, translation

COOKIE = "ocenter_tz"
SESSION_ZONE = "ocenter_time_zone"  # the zone a person chose (ocenter.preferences), in their session


def zone_of(request=None, cookies=None, session=None):
    """The time zone a request's (or a websocket's ``cookies`` and ``session``) person reads times in: the one they chose
    (``ocenter.preferences``), else their browser's, else None for the platform's own."""
    if request is not None:
        session = getattr(request, "session", None)
    chosen = session.get(SESSION_ZONE, "") if session is not None else ""
    name = chosen or unquote((request.COOKIES if request is not None else cookies or {}).get(COOKIE, ""))
    if not name or len(name) > 64:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class TimeZoneMiddleware:
    """Activates the person's time zone for the request (templates convert every aware time into it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_of(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        return self.get_response(request)


def language_of(cookies=None, accept: str = "") -> str:
    """The language a websocket's person reads: the one their pages are in (its cookie, else what the browser asks)."""
    from django.conf import settings
    from django.utils.translation import get_supported_language_variant
    from django.utils.translation.trans_real import parse_accept_lang_header

    chosen = (cookies or {}).get(settings.LANGUAGE_COOKIE_NAME)
    for code in [chosen] if chosen else [code for code, _ in parse_accept_lang_header(accept) if code != "*"]:
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def rendered_in(zone, language: str, render, *args):
    """``render(*args)`` with times in ``zone`` and words in ``language`` (a websocket's fragments, rendered away from any request)."""
    with translation.override(language), timezone.override(zone) if zone is not None else nullcontext():
        return render(*args)
