"""
Each person's time zone: the browser's, which ``static/js/ocenter.js`` keeps
in the ``ocenter_tz`` cookie. Pages show every time in it, and say which it is
(the top bar); a zone the server does not know, or none yet, is the
platform's ``TIME_ZONE``.
"""

import zoneinfo
from urllib.parse import unquote

from django.utils import timezone

COOKIE = "ocenter_tz"


def zone_of(request=None, cookies=None):
    """The time zone a request's (or a websocket's ``cookies``') person reads times in, or None for the platform's own."""
    name = unquote((request.COOKIES if request is not None else cookies or {}).get(COOKIE, ""))
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


def rendered_in(zone, render, *args):
    """``render(*args)`` with times in ``zone`` (a websocket's fragments, rendered away from any request)."""
    if zone is None:
        return render(*args)
    with timezone.override(zone):
        return render(*args)
