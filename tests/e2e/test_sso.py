"""
Single sign-on end to end: a real OpenID Connect provider (django-oauth-toolkit,
tests/oidc_provider) runs in its own process and database; oCenter, configured
from the environment as in production, sends the browser there and back. The
provider's groups decide who is staff and who holds which tenant role.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import _serve
from tests.e2e.test_browser import PASSWORD, _member
from tests.servers import answering, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)
CLIENT_SECRET = "ocenter-client-secret-0123456789abcdef"


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


class Provider:
    """The identity provider's process: ``python -m django`` with tests.oidc_provider.settings."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"{self.url}/o"
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")},
                    "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings", "OIDC_PROVIDER_DB": str(workdir / "provider.sqlite3"),
                    "OIDC_RSA_PRIVATE_KEY": _rsa_pem(), "OIDC_ISSUER": self.issuer}  # fmt: skip

    def django(self, *args: str, **kwargs):
        return subprocess.run([sys.executable, "-m", "django", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
                              **kwargs)  # fmt: skip

    def start(self):
        self.django("migrate", "-v", "0")
        self.process = subprocess.Popen([sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}", "--noreload"], cwd=ROOT,
                                        env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
        if answering(f"{self.issuer}/.well-known/openid-configuration") is None:
            raise RuntimeError("the OIDC provider did not start")
        return self

    def person(self, username: str, groups: list[str]):
        self.django("shell", "-c", (
            "from django.contrib.auth.models import Group, User\n"
            f"u = User.objects.create_user({username!r}, {username + '@example.com'!r}, {PASSWORD!r})\n"
            f"u.groups.set([Group.objects.get_or_create(name=g)[0] for g in {groups!r}])\n"))  # fmt: skip

    def client_for(self, redirect_uri: str):
        fields = {"name": "oCenter", "client_id": "ocenter", "client_secret": CLIENT_SECRET, "client_type": "confidential",
                  "authorization_grant_type": "authorization-code", "redirect_uris": redirect_uri, "algorithm": "RS256",
                  "skip_authorization": True}  # fmt: skip
        self.django("shell", "-c", f"from oauth2_provider.models import Application\nApplication.objects.create(**{fields!r})\n")

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def sso(transactional_db, tmp_path):
    """(oCenter's URL, the provider): oCenter signs people in through the provider, staff and roles from its groups."""
    provider = Provider(tmp_path).start()
    port = free_port()
    provider.client_for(f"http://127.0.0.1:{port}/oidc/callback/")
    issuer = provider.issuer
    env = {"OCENTER_OIDC_CLIENT_ID": "ocenter", "OCENTER_OIDC_CLIENT_SECRET": CLIENT_SECRET,
           "OCENTER_OIDC_AUTHORIZATION_ENDPOINT": f"{issuer}/authorize/", "OCENTER_OIDC_TOKEN_ENDPOINT": f"{issuer}/token/",
           "OCENTER_OIDC_USERINFO_ENDPOINT": f"{issuer}/userinfo/", "OCENTER_OIDC_JWKS_ENDPOINT": f"{issuer}/.well-known/jwks.json",
           "OCENTER_OIDC_STAFF_GROUPS": "platform-admins",
           "OCENTER_OIDC_TENANT_GROUPS": "acme-admins=acme:admin,acme-devs=acme:member"}  # fmt: skip
    try:
        for url in _serve(port=port, **env):
            yield url, provider
    finally:
        provider.stop()


def _sign_in_with_sso(browser, url, username) -> object:
    page = browser.new_context().new_page()
    page.goto(f"{url}/login/")
    page.click("#sso")
    page.wait_for_url(lambda u: u.startswith("http://127.0.0.1") and "/accounts/login/" in u, timeout=10_000)  # at the provider
    page.fill("#provider-username", username)
    page.fill("#provider-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: u.startswith(url) and "/oidc/" not in u and "/login/" not in u, timeout=15_000)
    return page


def test_people_sign_in_with_the_provider_and_land_with_the_roles_their_groups_map_to(sso, browser):
    from django.contrib.auth import get_user_model

    from ocenter.models import AuditEntry
    from tenants.models import Membership

    url, provider = sso
    _member("acme")
    provider.person("dana", ["platform-admins"])
    provider.person("erin", ["acme-admins", "acme-devs"])
    page = _sign_in_with_sso(browser, url, "dana")
    assert page.url.rstrip("/").endswith("/console") and get_user_model().objects.get(username="dana").is_staff
    page = _sign_in_with_sso(browser, url, "erin")
    assert "/t/" in page.url and not get_user_model().objects.get(username="erin").is_staff
    membership = Membership.objects.get(user__username="erin", tenant__slug="acme")
    assert membership.role == "admin"  # the higher of the two roles its groups map to
    assert AuditEntry.objects.filter(action="membership.create", changes__via="sso").count() == 1
    assert not get_user_model().objects.get(username="erin").has_usable_password()  # no password of ours to guess
    page.click("form[action='/logout/'] button")
    page.wait_for_url(lambda u: u.endswith("/logout/") or "/login" in u or u.rstrip("/") == url)
    assert page.goto(f"{url}/t/acme/").url.startswith(f"{url}/login/")  # signed out
    assert httpx.get(f"{url}/login/").status_code == 200  # local passwords stay: the form is still there
