"""
Guessing passwords and tokens: what issue 15 found (50 wrong passwords, then the right one, logged in, never a 429)
now locks the username from that address for the cool-off (django-axes), answers 429 with Retry-After, and leaves
the account usable from anywhere else. Basic auth is for trading a password for a token, nowhere else.
"""

import base64

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
PASSWORD = "right-password-0123456789"


@pytest.fixture
def alice(db, settings):
    settings.AXES_FAILURE_LIMIT = 10
    return get_user_model().objects.create_user("alice", password=PASSWORD, is_staff=True)  # staff: a platform token is hers to make


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()


def test_fifty_wrong_passwords_on_the_login_page_lock_the_username_from_that_address(client, alice):
    answers = [client.post("/login/", {"username": "alice", "password": f"guess-{i}"}).status_code for i in range(50)]
    assert answers[:9] == [200] * 9 and set(answers[10:]) == {429}  # the form again, then the pause
    locked = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429 and 0 < int(locked["Retry-After"]) <= 15 * 60 and b"try again in 15 minutes" in locked.content
    assert "_auth_user_id" not in client.session  # the right password, from the guessing address: not let in
    elsewhere = client.post("/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.9.8.7")
    assert elsewhere.status_code == 302 and client.session["_auth_user_id"] == str(alice.id)  # the person, from their own address


def test_basic_auth_trades_a_password_for_a_token_and_is_locked_out_the_same_way(alice):
    api = APIClient()
    body = {"name": "ci"}
    ok = api.post("/api/v1/tokens", body, format="json", HTTP_AUTHORIZATION=_basic(PASSWORD))
    assert ok.status_code == 201 and ok.json()["token"].startswith("ocn_")
    answers = [api.post("/api/v1/tokens", body, format="json", HTTP_AUTHORIZATION=_basic(f"guess-{i}")) for i in range(50)]
    assert {a.status_code for a in answers[:9]} == {401} and {a.status_code for a in answers[10:]} == {429}
    last = answers[-1]
    assert last["Content-Type"] == "application/problem+json" and int(last["Retry-After"]) > 0 and last.json()["retry_after"] > 0
    assert api.post("/api/v1/tokens", body, format="json", HTTP_AUTHORIZATION=_basic(PASSWORD)).status_code == 429


def test_basic_auth_is_refused_anywhere_but_the_token_exchange_without_checking_the_password(alice):
    from django.contrib.auth.signals import user_login_failed

    tried = []
    user_login_failed.connect(tried.append, dispatch_uid="probe")  # no password is checked here, right or wrong
    try:
        answer = APIClient().get("/api/v1/projects", HTTP_AUTHORIZATION=_basic(PASSWORD))
    finally:
        user_login_failed.disconnect(dispatch_uid="probe")
    assert answer.status_code == 401 and "only for POST /api/v1/tokens" in answer.json()["detail"] and tried == []


def test_random_bearer_tokens_are_answered_429_after_a_few_and_a_real_token_still_works(alice, settings):

    from tenants.services import token_create

    settings.OCENTER_BAD_TOKENS_PER_MINUTE = 20
    api = APIClient()
    answers = [api.get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer ocn_guess{i:020d}").status_code for i in range(50)]
    assert set(answers[:20]) == {401} and set(answers[20:]) == {429}
    throttled = api.get("/api/v1/projects", HTTP_AUTHORIZATION="Bearer ocn_guess")
    assert 0 < int(throttled["Retry-After"]) <= 60
    _, secret = token_create(actor=None, user=alice, tenant=None, name="mine")
    assert api.get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="10.9.8.7").status_code == 200


def test_a_token_past_its_rate_is_answered_429(alice, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    from tenants.services import token_create

    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "per_token", "5/min")  # OCENTER_TOKEN_RATE, lowered for the test
    _, secret = token_create(actor=None, user=alice, tenant=None, name="busy")
    _, other = token_create(actor=None, user=alice, tenant=None, name="calm")
    answers = [APIClient().get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code for _ in range(8)]
    assert answers == [200] * 5 + [429] * 3
    assert APIClient().get("/api/v1/projects", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200  # a rate a token


def test_an_address_asks_for_a_few_dozen_tokens_a_minute_at_most(alice, settings):

    api = APIClient()
    answers = [api.post("/api/v1/tokens", {"name": f"t{i}"}, format="json", HTTP_AUTHORIZATION=_basic(PASSWORD)) for i in range(32)]
    assert [a.status_code for a in answers] == [201] * 30 + [429] * 2 and int(answers[-1]["Retry-After"]) > 0
