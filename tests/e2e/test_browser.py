"""End to end in real headless Chromium.

Ask for a slice and watch it run and cost money, live; other tenants see nothing; the console follows an agent going down.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from pools.models import Allocation
from pools.services.sync import pool_sync
from tenants.models import Membership, Project, Role, Tenant
from tenants.services import quota_set, tenant_create
from tests.agents import a100_nodes
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-browser-0123456789"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _user(username, **fields):
    """A user whose password the server (Django's default hashers) can check."""
    from django.contrib.auth.hashers import make_password

    return get_user_model().objects.create(username=username, password=make_password(PASSWORD, hasher="pbkdf2_sha256"), **fields)


def _member(slug, role=Role.MEMBER):
    tenant = tenant_create(actor=None, slug=slug, name=slug.title())
    Project.objects.create(tenant=tenant, slug="main", name="Main")
    quota_set(
        actor=None,
        tenant=tenant,
        project=None,
        guarantee_compute_units=400,
        limit_compute_units=800,
        guarantee_memory_mib=10**6,
        limit_memory_mib=10**6,
        guarantee_slices=16,
        limit_slices=16,
    )
    user = _user(f"{slug}-user")
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


def _sign_in(page, url, username, path):
    page.goto(f"{url}/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: u.endswith(path), timeout=10_000)


def _login(browser, url, username, path, **context):
    """A page of a new browser context (``context``: Playwright's options, a ``timezone_id`` say), signed in at ``path``."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    _sign_in(page, url, username, path)
    page.evaluate("window.__notReloaded = true")
    return page


def _connected(page):
    page.wait_for_function("() => window.htmx !== undefined && document.querySelector('[ws-connect]') !== null", timeout=10_000)
    page.wait_for_timeout(500)  # the socket opens right after load


def test_request_run_release_isolated_and_live(server, browser, agents):
    agent = agents("bj", [a100_nodes(1, gpus=4)])
    pool = PoolFactory(name="bj", agent=agent)
    pool_sync(pool_id=pool.id)
    from decimal import Decimal

    from django.utils import timezone

    from billing.services import price_set

    price_set(actor=None, compute_gpu_hour=Decimal("36000.00"), effective_from=timezone.now() - timezone.timedelta(days=1))
    _member("acme")
    _member("globex")
    _user("operator", is_staff=True)

    acme = _login(browser, server, "acme-user", "/t/acme/allocations/")
    globex = _login(browser, server, "globex-user", "/t/globex/allocations/")
    console = _login(browser, server, "operator", "/console/")
    for page in (acme, globex, console):
        _connected(page)

    acme.fill("#id_compute_units", "25")
    acme.fill("#id_memory_mib", "2048")
    acme.click("#request-form button[type=submit]")
    row = acme.locator("#allocation-rows tr").first
    row.locator("[data-state=running]").wait_for(timeout=10_000)
    allocation = Allocation.objects.get()
    assert row.get_attribute("id") == f"allocation-{allocation.id}"
    assert acme.evaluate("window.__notReloaded") is True
    console.locator("#event-feed", has_text="acme").locator("strong", has_text="running").first.wait_for(timeout=10_000)
    assert console.evaluate("window.__notReloaded") is True

    # It costs money, and both views show it without a reload (metering runs every second here).
    tenant_id = allocation.tenant_id
    acme.wait_for_function(
        f"() => parseFloat(document.querySelector('#tenant-spend-{tenant_id} strong').dataset.amount) > 0", timeout=15_000
    )
    console.wait_for_function("() => parseFloat(document.querySelector('#spend-today').textContent) > 0", timeout=15_000)
    assert acme.evaluate("window.__notReloaded") is True and console.evaluate("window.__notReloaded") is True

    # globex saw nothing of it, live or otherwise.
    globex.wait_for_timeout(500)
    assert globex.locator("#allocation-rows tr").count() == 0
    assert "acme" not in globex.content() and globex.evaluate("window.__notReloaded") is True

    acme.once("dialog", lambda dialog: dialog.accept())
    acme.locator(f"#allocation-{allocation.id} button", has_text="Release").click()
    acme.locator(f"#allocation-{allocation.id} [data-state=released]").wait_for(timeout=10_000)
    assert acme.evaluate("window.__notReloaded") is True
    assert agent.client().get("/v1/allocations").json()["allocations"] == []

    # The console follows the pool going down, without a reload.
    agent.stop()
    console.locator(f"#pool-{pool.id} .status-unreachable").wait_for(timeout=15_000)
    assert console.evaluate("window.__notReloaded") is True


PAGES = [  # (who, path, a heading in English, the same in Chinese, file)
    ("operator", "/console/", "Overview", "总览", "console-overview"),
    ("operator", "/console/pools/", "Pools", "资源池", "console-pools"),
    ("operator", "/console/allocations/", "Allocations", "资源分配", "console-allocations"),
    ("operator", "/console/tenants/", "Tenants", "租户", "console-tenants"),
    ("operator", "/console/billing/", "Billing", "计费", "console-billing"),
    ("acme-user", "/t/acme/", "Quotas", "配额", "portal-tenant"),
    ("acme-user", "/t/acme/allocations/", "Ask for GPU slices", "申请 GPU 切片", "portal-allocations"),
    ("acme-user", "/t/acme/billing/", "Statements", "账单", "portal-billing"),
    ("operator", "/console/queue/", "Waiting, by class and tenant", "等待中，按类别和租户", "console-queue"),
    ("operator", "/console/heatmap/", "Heatmap", "热力图", "console-heatmap"),
    ("operator", "/console/trends/", "Fleet utilization", "集群利用率", "console-trends"),
    ("acme-user", "/allocations/{running}/", "Where it runs", "运行位置", "portal-allocation"),
    ("globex-user", "/allocations/{waiting}/", "History", "历史", "portal-allocation-waiting"),
]
WIDTHS = (1280, 390)  # a laptop and a phone: each page is drawn at both, and nothing may overflow sideways


def test_main_pages_in_english_and_chinese(server, browser, agents, tmp_path):
    """Every main page renders in both languages; with OCENTER_WRITE_SCREENSHOTS=1 they land in docs/screenshots."""
    import os
    import shutil

    agent = agents("bj-a100", [a100_nodes(2, gpus=8)])
    pool = PoolFactory(name="bj-a100", agent=agent)
    pool_sync(pool_id=pool.id)
    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    from pools.services.allocations import allocation_request

    tenant = Membership.objects.get(user__username="acme-user").tenant
    project = tenant.projects.get()
    made = [allocation_request(actor=None, tenant=tenant, project=project, count=1, compute_units=units, memory_mib=8192)[0]
            for units in (100, 50, 25, 25)]  # fmt: skip
    _member("globex", role=Role.OWNER)
    globex = Tenant.objects.get(slug="globex")
    quota_set(actor=None, tenant=globex, project=None, guarantee_compute_units=800, limit_compute_units=2000, guarantee_memory_mib=10**7,
              limit_memory_mib=10**7, guarantee_slices=32, limit_slices=32)  # fmt: skip
    allocation_request(actor=None, tenant=globex, project=globex.projects.get(), count=14, compute_units=100, memory_mib=8192)
    waiting, _ = allocation_request(actor=None, tenant=globex, project=globex.projects.get(), count=2, compute_units=100, memory_mib=8192)
    ids = {"running": made[0].id, "waiting": waiting.id}
    pages = {}
    for who, path, english, chinese, name in PAGES:
        path = path.format(**ids)
        if who not in pages:
            pages[who] = _login(browser, server, who, path)
        page = pages[who]
        for language, heading in (("en", english), ("zh-hans", chinese)):
            page.context.add_cookies([{"name": "django_language", "value": language, "url": server}])
            page.goto(f"{server}{path}")
            assert page.locator("html").get_attribute("lang") == language
            assert page.get_by_text(heading, exact=True).first.is_visible(), (path, heading)
            for width in (*WIDTHS, 768):
                page.set_viewport_size({"width": width, "height": 900})
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{path} ({language}) overflows by {overflow}px at {width}px"
                if width in WIDTHS:
                    shot = tmp_path / f"{name}.{language}{'' if width == 1280 else f'.{width}'}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    if os.environ.get("OCENTER_WRITE_SCREENSHOTS"):
                        SHOTS.mkdir(parents=True, exist_ok=True)
                        shutil.copy(shot, SHOTS / shot.name)
            page.set_viewport_size({"width": 1280, "height": 900})
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(WIDTHS) * len(PAGES)
