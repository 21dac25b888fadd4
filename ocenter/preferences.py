"""
Each person's preferences (their time zone), kept in ``Preferences`` and,
for the pages, in their session: it is read on every page without a query.
"""

import zoneinfo
from functools import cache

from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver

from ocenter.audit import audit_record, field_changes
from ocenter.errors import DomainError
from ocenter.models import Preferences
from ocenter.timezones import SESSION_ZONE


@cache
def time_zones() -> list[str]:
    """Every IANA zone this server knows, sorted (``Asia/Shanghai``…)."""
    return sorted(zoneinfo.available_timezones())


def preferences_set(*, actor, time_zone: str, session=None) -> Preferences:
    """Set ``actor``'s time zone (``""``: the browser's); ``session``: the request's, which pages read it from."""
    if time_zone and time_zone not in time_zones():
        raise DomainError(
            f"time_zone '{time_zone[:64]}' is not a zone this server knows; pick one such as Asia/Shanghai", field="time_zone"
        )
    with transaction.atomic():
        preferences, _ = Preferences.objects.select_for_update().get_or_create(user=actor)
        changes = field_changes({"time_zone": preferences.time_zone}, {"time_zone": time_zone})
        if changes:
            preferences.time_zone = time_zone
            preferences.save(update_fields=["time_zone"])
            audit_record(actor=actor, action="preferences.update", obj=preferences, changes=changes)
    if session is not None:
        session[SESSION_ZONE] = time_zone
    return preferences


@receiver(user_logged_in)
def _remember_at_login(sender, request, user, **kwargs):
    """A person's own zone, into the session they just opened."""
    zone = Preferences.objects.filter(user=user).values_list("time_zone", flat=True).first()
    request.session[SESSION_ZONE] = zone or ""
