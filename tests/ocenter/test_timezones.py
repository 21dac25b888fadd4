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
