"""A person's time zone comes from their browser's cookie; what is not a zone is the platform's own."""

import pytest
from django.test import RequestFactory

from ocenter.timezones import COOKIE, zone_of


@pytest.mark.parametrize(
    "cookie,zone",
    [("Asia%2FShanghai", "Asia/Shanghai"), ("Europe/Berlin", "Europe/Berlin"), ("Mars%2FOlympus", None), ("..%2F..%2Fetc%2Fpasswd", None),
     ("", None), ("A" * 65, None)],
)  # fmt: skip
def test_the_zone_is_the_cookies_when_it_names_one(cookie, zone):
    request = RequestFactory().get("/")
    request.COOKIES[COOKIE] = cookie
    found = zone_of(request)
    assert (str(found) if found else None) == zone
    assert (str(z) if (z := zone_of(cookies={COOKIE: cookie})) else None) == zone


def test_a_zone_the_server_does_not_know_is_refused_and_nothing_changes(db):
    import pytest
    from django.contrib.auth import get_user_model

    from ocenter.errors import DomainError
    from ocenter.models import AuditEntry, Preferences
    from ocenter.preferences import preferences_set

    user = get_user_model().objects.create(username="alice")
    with pytest.raises(DomainError) as refused:
        preferences_set(actor=user, time_zone="Mars/Olympus_Mons")
    assert refused.value.field == "time_zone" and "Asia/Shanghai" in refused.value.detail
    assert not Preferences.objects.exists() and not AuditEntry.objects.exists()
    session = {}
    preferences_set(actor=user, time_zone="Asia/Shanghai", session=session)
    preferences_set(actor=user, time_zone="Asia/Shanghai", session=session)  # the same again: nothing to record
    assert session == {"ocenter_time_zone": "Asia/Shanghai"} and AuditEntry.objects.filter(action="preferences.update").count() == 1
