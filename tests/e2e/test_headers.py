"""What the pages promise the browser: a Content-Security-Policy that every page and its live parts work under (no
violation in real Chromium), HSTS behind a TLS proxy, and the API's schema open to anonymous readers only when asked."""

import time

import httpx
import pytest

from tests.e2e.conftest import _serve
from tests.e2e.test_browser import _connected, _login, _member, _user
from tests.e2e.test_console import _ask, bj  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


def test_every_page_and_its_live_parts_work_under_the_content_security_policy(server, browser, bj):  # noqa: F811
    _member("acme")
    _user("operator", is_staff=True)
    answer = httpx.get(f"{server}/login/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page = _login(browser, server, "acme-user", "/t/acme/allocations/")
    page.add_init_script(WATCH)
    messages = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    page.reload()
    _connected(page)
    page.fill("#id_memory_mib", "2048")
    page.fill("#id_compute_units", "25")  # the preview, by htmx
    page.wait_for_function("() => document.querySelector('#fit').textContent.includes('25')", timeout=5_000)
    allocation = _ask(server, "acme-user", compute_units=50)
    page.locator(f"#allocation-{allocation.id}").wait_for(timeout=5_000)  # a row, over the socket
    page.select_option("select[name=state]", "running")  # a select that submits its form (no inline handler)
    page.wait_for_url(lambda u: "state=running" in u)
    operator = _login(browser, server, "operator", "/console/")
    operator.add_init_script(WATCH)
    operator.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    for path in ("/console/", f"/console/pools/{bj.id}/", "/console/heatmap/", "/console/queue/", "/console/trends/", "/api/v1/docs/"):
        operator.goto(f"{server}{path}")
        operator.wait_for_timeout(300)
        assert operator.evaluate("window.__violations") == [], path
    operator.wait_for_function("() => document.querySelector('.swagger-ui .info') !== null", timeout=10_000)  # the docs drew
    time.sleep(0.2)
    assert page.evaluate("window.__violations") == [] and messages == []


def test_hsts_behind_a_tls_proxy_and_the_schema_opened_by_a_setting(transactional_db):
    serving = _serve(BEHIND_TLS_PROXY="1", OCENTER_PUBLIC_API_DOCS="1", DEBUG="0", ALLOWED_HOSTS="127.0.0.1", SECURE_COOKIES="1")
    url = next(serving)
    try:
        answer = httpx.get(f"{url}/login/", headers={"X-Forwarded-Proto": "https"})
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
        assert httpx.get(f"{url}/api/v1/schema/").status_code == 200  # opened: anyone may read it
    finally:
        next(serving, None)
