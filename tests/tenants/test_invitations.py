"""
Consent: a tenant's admin cannot add an existing person (another tenant's, even the staff admin) to their tenant, and
no answer tells whether a username exists. They invite; the person invited accepts; a platform setting says whether
an invitation may also make an account.
"""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tenants.models import Invitation, Membership, Role

pytestmark = pytest.mark.django_db


def _invite(api, username, role="member"):
    return api.post("/api/v1/invitations", {"tenant": "acme", "username": username, "role": role}, format="json")


def test_an_admin_adds_nobody_directly_and_invitations_say_nothing_of_who_exists(fleet, staff):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    fleet.tenant("globex")  # globex-user exists, in another tenant
    refused = api.post("/api/v1/memberships", {"tenant": "acme", "username": "operator", "role": "member"}, format="json")
    assert refused.status_code == 403 and "/api/v1/invitations" in refused.json()["detail"]
    answers = [_invite(api, name) for name in ("operator", "globex-user", "nobody-by-this-name")]
    assert {a.status_code for a in answers} == {201}
    shapes = [sorted(a.json()) for a in answers]
    assert shapes[0] == shapes[1] == shapes[2] and "initial_password" not in shapes[0]
    assert not Membership.objects.filter(tenant__slug="acme", user__username__in=["operator", "globex-user"]).exists()  # nobody bound


def test_the_person_invited_accepts_and_nobody_else_can(fleet):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    _, _, globex_user, globex_api = fleet.tenant("globex")
    invitation = _invite(api, "globex-user", role="admin").json()
    mine = globex_api.get("/api/v1/invitations").json()["results"]
    assert [i["id"] for i in mine] == [invitation["id"]]  # addressed to them, they see it
    _, _, _, stranger = fleet.tenant("initech")
    assert stranger.post(f"/api/v1/invitations/{invitation['id']}/accept").status_code == 404  # not theirs to see
    accepted = globex_api.post(f"/api/v1/invitations/{invitation['id']}/accept")
    assert accepted.status_code == 200 and Membership.objects.get(tenant__slug="acme", user=globex_user).role == Role.ADMIN
    assert globex_api.post(f"/api/v1/invitations/{invitation['id']}/accept").status_code == 409  # once


def test_an_invitation_makes_an_account_only_where_the_platform_says_so(fleet, client, settings):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    link = _invite(api, "newcomer").json()["accept_url"].removeprefix("http://testserver")
    settings.OCENTER_USER_CREATION = "staff"
    assert b"Create my account" not in client.get(link).content
    client.post(link, {"password": "a-long-password-0123"})
    assert not get_user_model().objects.filter(username="newcomer").exists()
    settings.OCENTER_USER_CREATION = "invitations"
    page = client.get(link)
    assert b"Create my account" in page.content and b"newcomer" in page.content
    joined = client.post(link, {"password": "a-long-password-0123"})
    assert joined.status_code == 302 and Membership.objects.get(user__username="newcomer", tenant__slug="acme").role == Role.MEMBER
    assert client.get(link).status_code == 404  # used
    assert Invitation.objects.get(username="newcomer").accepted_by.username == "newcomer"


def test_the_portal_lists_an_invitation_and_accepts_it(fleet, client):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    _, _, globex_user, _ = fleet.tenant("globex")
    _invite(api, "globex-user")
    client.force_login(globex_user)
    page = client.get("/t/").content.decode()
    assert "invites you as" in page
    invitation = Invitation.objects.get()
    assert client.post(f"/t/invitations/{invitation.id}/accept/").status_code == 302
    assert Membership.objects.filter(tenant__slug="acme", user=globex_user).exists()
    assert APIClient().post(f"/api/v1/invitations/{invitation.id}/accept").status_code == 401


def test_an_invitation_without_a_role_is_for_a_member(fleet):
    _, _, _, api = fleet.tenant("acme", role=Role.ADMIN)
    answer = api.post("/api/v1/invitations", {"tenant": "acme", "username": "dana"}, format="json")
    assert answer.status_code == 201 and answer.json()["role"] == "member"
