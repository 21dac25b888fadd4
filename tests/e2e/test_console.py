"""The console and portal in real headless Chromium: what issue 14 found broken, each shown working."""

import time
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import price_set
from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.e2e.test_browser import _connected, _login, _member, _sign_in, _user
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bj(agents):
    """A pool of one node with four A100s, synced, and a price of 100 a GPU-hour."""
    agent = agents("bj", [a100_nodes(1, gpus=4)])
    pool = PoolFactory(name="bj", agent=agent)
    pool_sync(pool_id=pool.id)
    price_set(actor=None, compute_gpu_hour=Decimal("100.00"), effective_from=timezone.now() - timezone.timedelta(days=1))
    return pool


def _wait_for_text(page, selector: str, pattern: str, timeout=5_000):
    """Until the element's text matches ``pattern`` (a JavaScript regular expression)."""
    page.wait_for_function(f"() => {{ const e = document.querySelector('{selector}'); return e && /{pattern}/.test(e.textContent) }}",
                           timeout=timeout)  # fmt: skip


def _ask(server, username, **spec):
    """A request through the server's API (events reach pages only from the server's own process)."""
    import httpx

    from pools.models import Allocation
    from tenants.models import Membership
    from tenants.services import token_create

    member = Membership.objects.select_related("tenant", "user").get(user__username=username)
    _, secret = token_create(actor=None, user=member.user, tenant=member.tenant, name="browser-test")
    body = {"project": str(member.tenant.projects.get().id), "compute_units": 25, "memory_mib": 1024, **spec}
    response = httpx.post(f"{server}/api/v1/allocations", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert response.status_code == 201, response.text
    allocation = Allocation.objects.get(id=response.json()["id"])
    allocation.release = lambda: httpx.delete(f"{server}/api/v1/allocations/{allocation.id}", headers={"Authorization": f"Bearer {secret}"})
    return allocation


def _htmx_errors(page) -> list:
    errors = []
    page.on("console", lambda message: errors.append(message.text) if "htmx:" in message.text else None)
    return errors


def test_the_request_preview_follows_every_change(server, browser, bj):
    _member("acme")
    page = _login(browser, server, "acme-user", "/t/acme/allocations/")
    errors = _htmx_errors(page)
    fit = page.locator("#fit")
    page.fill("#id_memory_mib", "2048")
    page.fill("#id_compute_units", "25")
    _wait_for_text(page, "#fit", "25\\.00")
    page.fill("#id_compute_units", "50")
    _wait_for_text(page, "#fit", "50\\.00")
    page.fill("#id_compute_units", "500")  # past a GPU: the preview says what is wrong
    page.wait_for_function("() => document.querySelector('#fit .fit-no') !== null", timeout=5_000)
    assert fit.count() == 1 and errors == []


def test_the_overview_has_one_socket_and_its_bars_and_feed_follow_allocations(server, browser, bj):
    _member("acme")
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", "/console/")
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.reload()
    _connected(page)
    _wait_for_text(page, "#capacity", "0% compute")
    started = time.monotonic()
    allocation = _ask(server, "acme-user", compute_units=100)
    _wait_for_text(page, "#capacity", "25% compute", timeout=2_000)  # one of four GPUs, within 2 s of the event
    assert time.monotonic() - started < 2.5
    _wait_for_text(page, "#fragmentation", "%")
    page.wait_for_timeout(500)
    assert page.locator("#event-feed li", has_text=str(allocation.id)[:8]).count() == 3  # requested, placed, running: once each
    assert len(sockets) == 1 and page.evaluate("window.__notReloaded") is None  # reloaded once, on purpose, to count sockets


def test_the_pool_grid_follows_allocations_live(server, browser, bj):
    _member("acme")
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", f"/console/pools/{bj.id}/")
    _connected(page)
    assert page.locator(".gpu .chip").count() == 0
    started = time.monotonic()
    allocation = _ask(server, "acme-user", compute_units=60)
    page.locator(".gpu-room .chip", has_text="acme · 60 units").wait_for(timeout=2_000)
    assert time.monotonic() - started < 2.5
    gpu = allocation.slices.get().accelerator_id
    assert "60 units" in page.locator(f"#gpu-room-{gpu}").inner_text()
    assert page.evaluate("window.__notReloaded") is True


def test_the_spend_chart_draws_today_inside_its_box_with_axes_and_dates(server, browser, bj):
    from billing.models import UsageRecord
    from tenants.models import Role

    _member("acme", role=Role.OWNER)
    allocation = _ask(server, "acme-user", compute_units=100)
    time.sleep(1)
    assert allocation.release().status_code == 200  # its piece of the ledger closes at the next metering run
    deadline = time.monotonic() + 15
    while not UsageRecord.objects.exists() and time.monotonic() < deadline:  # metered every second here
        time.sleep(0.3)
    page = _login(browser, server, "acme-user", "/t/acme/billing/")
    chart = page.locator("#spend-chart")
    box = chart.evaluate("svg => svg.viewBox.baseVal.width")
    bars = chart.evaluate(
        "svg => [...svg.querySelectorAll('rect')].map(r => [r.x.baseVal.value, r.width.baseVal.value, r.height.baseVal.value])"
    )
    assert bars and all(x >= 0 and x + width <= box for x, width, _ in bars), (bars, box)
    assert bars[-1][2] > 0  # today's bar, drawn
    ticks = chart.locator("text.tick").all_text_contents()
    assert len([t for t in ticks if "-" in t]) >= 4  # a date every week
    assert "0" in ticks and len(chart.locator("line.axis").all()) == 2


def test_a_description_of_one_long_word_does_not_widen_the_page(server, browser, bj):
    from tenants.models import Project, Role

    _member("acme", role=Role.OWNER)
    Project.objects.filter(tenant__slug="acme").update(description="x" * 2000)
    page = _login(browser, server, "acme-user", "/t/acme/")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, width


def test_refusals_and_missing_pages_are_ocenters_own_with_a_way_back(transactional_db, browser, bj):
    from tests.e2e.conftest import _serve

    _member("acme")
    serving = _serve(DEBUG="0", ALLOWED_HOSTS="127.0.0.1,localhost")  # Django's own 404 page shows only without DEBUG
    server = next(serving)
    try:
        page = _login(browser, server, "acme-user", "/t/acme/")
        missing = "There is nothing here"
        for path, status, heading in [("/console/", 403, "You cannot open this page"), ("/t/acme/no-such-page/", 404, missing),
                                      ("/t/globex/", 404, missing)]:  # fmt: skip
            response = page.goto(f"{server}{path}")
            assert response.status == status, path
            assert page.get_by_role("heading", name=heading).is_visible()
            page.get_by_role("link", name="Back to your start page").click()
            page.wait_for_url(lambda u: "/t/acme" in u or u.rstrip("/") == server, timeout=5_000)
    finally:
        next(serving, None)


def test_a_server_error_page_needs_nothing_but_itself():
    from django.test import RequestFactory
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500 and b"Something went wrong on our side" in response.content and b'href="/"' in response.content


def test_chinese_pills_links_and_dates_stay_on_one_line_and_the_nav_a_row_on_a_phone(server, browser, bj):
    _member("acme")
    _user("operator", is_staff=True)
    _ask(server, "acme-user", compute_units=25)
    page = _login(browser, server, "operator", "/console/allocations/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
    for path, selector in [("/console/allocations/", ".status"), ("/console/allocations/", "td button"), ("/console/audit/", "td time")]:
        page.goto(f"{server}{path}")
        lines = page.locator(selector).evaluate_all("els => els.map(e => e.getClientRects().length)")
        heights = page.locator(selector).evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
        assert lines and max(lines) == 1 and max(heights) < 30, (path, selector, lines, heights)
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{server}/console/")
    tops = page.locator(".nav a").evaluate_all("els => els.map(e => Math.round(e.getBoundingClientRect().top))")
    assert len(tops) >= 4 and len(set(tops)) < len(tops) / 2, tops  # rows of links, not one link a row
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_lists_keep_their_filters_say_when_nothing_matches_and_show_changes_readably(server, browser, bj):
    from django.contrib.auth import get_user_model

    from pools.models import Allocation
    from tenants.models import Tenant
    from tenants.services import quota_set

    _member("acme")
    _user("operator", is_staff=True)
    tenant = Tenant.objects.get(slug="acme")
    project = tenant.projects.get()
    Allocation.objects.bulk_create([Allocation(tenant=tenant, project=project, compute_units=10, memory_mib=100, state="queued")
                                    for _ in range(60)])  # fmt: skip
    operator = get_user_model().objects.get(username="operator")
    quota_set(actor=operator, tenant=tenant, project=None, guarantee_compute_units=0, limit_compute_units=100, guarantee_memory_mib=0,
              limit_memory_mib=10**6, guarantee_slices=0, limit_slices=10)  # fmt: skip
    page = _login(browser, server, "operator", "/console/allocations/")
    page.goto(f"{server}/console/allocations/?priority=offline&state=queued")
    older = page.get_by_role("link", name="older →")
    href = older.get_attribute("href")
    assert "priority=offline" in href and "state=queued" in href and "page=2" in href
    older.click()
    page.wait_for_url(lambda u: "page=2" in u and "priority=offline" in u)
    page.goto(f"{server}/console/allocations/?priority=realtime")
    assert page.get_by_text("No allocation matches these filters.").is_visible()
    assert page.get_by_text("No allocation yet.").count() == 0
    page.goto(f"{server}/console/audit/")
    shown = " ".join(page.locator("code.changes").all_inner_texts())
    assert "limit_compute_units" in shown and "None" not in shown and "{'" not in shown


def test_a_forecast_over_its_budget_is_flagged_in_the_portal_and_the_console(server, browser, bj):
    from billing.services import budget_set
    from tenants.models import Role, Tenant

    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    budget_set(actor=None, tenant=Tenant.objects.get(slug="acme"), amount=Decimal("0.50"))
    _ask(server, "acme-user", compute_units=100)  # 100 a GPU-hour: far past 0.50 by the month's end
    for who, path in [("acme-user", "/t/acme/billing/"), ("operator", "/console/billing/")]:
        page = _login(browser, server, who, path)
        alerts = page.get_by_role("alert").filter(has_text="forecast over budget by")
        alerts.first.wait_for(timeout=10_000)
        assert alerts.count() == 1, who
        over = Decimal(alerts.inner_text().rsplit(" ", 1)[-1].replace(",", ""))
        assert over > 0, who  # by how much, past the 0.50


def test_after_a_form_error_focus_is_on_what_to_change(server, browser, bj):
    _member("acme")
    page = _login(browser, server, "acme-user", "/t/acme/allocations/")
    page.fill("#id_count", "64")  # more than the pool's four GPUs: the server says so on the field
    page.fill("#id_memory_mib", "1024")
    page.click("#request-form button[type=submit]")
    page.locator("#request-form .error, #request-form [aria-invalid=true]").first.wait_for(timeout=5_000)
    page.wait_for_timeout(200)
    focused = page.evaluate("document.activeElement && (document.activeElement.id || document.activeElement.className)")
    assert focused not in ("", None) and focused != "body", focused
    assert page.evaluate("document.activeElement !== document.body")


def test_times_are_in_the_browsers_zone_and_say_so(server, browser, bj):
    from datetime import timedelta as delta

    from ocenter.models import AuditEntry

    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", "/console/audit/", timezone_id="Asia/Shanghai")
    entry = AuditEntry.objects.create(actor_label="test", action="test.moment", object_type="test")
    page.reload()  # the zone's cookie was set by the first page
    assert page.locator(".tz").inner_text() == "Asia/Shanghai"
    shown = page.locator("tr", has_text="test.moment").locator("time").inner_text()
    assert shown == (entry.at + delta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def test_chinese_pages_group_thousands(server, browser, bj):
    _member("acme")
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", "/t/acme/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
    page.reload()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    quotas = page.locator("table").first.inner_text()
    assert "1,000,000 MiB" in quotas, quotas  # Django's own zh_Hans would group by 10,000 with no separator


def test_confirm_dialogs_speak_the_pages_language(server, browser, bj):
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", f"/console/pools/{bj.id}/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
    page.reload()
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.locator("form[data-confirm] button").first.click()
    page.wait_for_timeout(300)
    assert asked and "排空 bj" in asked[0], asked
    assert page.url.endswith(f"/console/pools/{bj.id}/")  # dismissed: nothing was sent
    assert not type(bj).objects.get(id=bj.id).draining


def test_the_price_books_from_is_when_a_price_applies_in_chinese(server, browser, bj):
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", "/console/billing/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
    page.reload()
    headers = page.locator("th").all_inner_texts()
    assert "生效时间" in headers and "来源" not in headers  # "source" is the audit log's From (an IP address), not this one


# Words a Chinese page may show in Latin letters: names (the product, units, the data's own names), not sentences.
LATIN_OK = {"oCenter", "API", "GPU", "GPUs", "MiB", "GiB", "NVIDIA", "A100-SXM4-80GB", "vir05_1c_16g", "CNY", "UTC", "ocn", "acme",
            "acme-user", "operator", "main", "bj", "Main", "Acme", "browser-test", "n00", "cn-test", "simulated", "CSV"}  # fmt: skip
LATIN_TEXT = """() => {
  const skip = 'code, pre, .user-text, .recorded, select, noscript, script, style, .tz';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  for (let node; (node = walker.nextNode());) {
    const parent = node.parentElement;
    if (parent && !parent.closest(skip) && parent.checkVisibility()) texts.push(node.textContent);
  }
  for (const e of document.querySelectorAll('[title], [placeholder], [aria-label], [data-confirm], [hx-confirm]'))
    for (const name of ['title', 'aria-label', 'data-confirm', 'hx-confirm'])
      if (e.hasAttribute(name) && !e.closest(skip)) texts.push(e.getAttribute(name));
  return texts.join(' | ');
}"""


def _english_left(page) -> list[str]:
    import re

    text = page.evaluate(LATIN_TEXT)
    found = []
    for match in re.finditer(r"[A-Za-z][\w'-]*[A-Za-z]", text):
        word = match.group()
        if word not in LATIN_OK and not re.fullmatch(r"[0-9a-f-]+|GPU-[0-9a-f-]+|ocn_[\w-]+", word):  # ids and token prefixes
            found.append(f"{word}: {' '.join(text[max(0, match.start() - 30) : match.end() + 30].split())}")
    return found


def test_chinese_pages_and_their_live_parts_are_chinese_throughout(server, browser, bj):
    from django.contrib.auth import get_user_model

    from billing.services import budget_set, notification_send
    from ocenter import reasons
    from tenants.models import Role, Tenant

    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    tenant = Tenant.objects.get(slug="acme")
    budget_set(actor=get_user_model().objects.get(username="operator"), tenant=tenant, amount=Decimal("5000.00"))
    spent = reasons.SPENT_WHILE_IDLE % {"amount": "0.05", "currency": "CNY"}
    notification_send(tenant_id=tenant.id, kind="idle", message=reasons.IDLE_FLAGGED % {
        "allocation": "7fe2a523", "since": "2026-12-02 15:26", "threshold": 5, "minutes": 2, "spent": spent,
        "next": reasons.WILL_BE_RELEASED % {"minutes": 15}})  # fmt: skip
    running = _ask(server, "acme-user", compute_units=100, count=4)
    waiting = _ask(server, "acme-user", compute_units=50)  # no room left: it waits, saying why
    pages = {
        "operator": ["/console/", "/console/pools/", f"/console/pools/{bj.id}/", "/console/allocations/", "/console/tenants/",
                     "/console/billing/", "/console/idle/", "/console/audit/", "/t/acme/", "/console/queue/", "/console/heatmap/",
                     "/console/trends/", f"/allocations/{waiting.id}/", "/preferences/"],
        "acme-user": ["/t/acme/", "/t/acme/allocations/", "/t/acme/billing/", "/t/acme/idle/", "/t/acme/queue/",
                      f"/allocations/{running.id}/"],
    }  # fmt: skip
    left = {}
    for who, paths in pages.items():
        page = _login(browser, server, who, paths[0])
        page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
        for path in paths:
            page.goto(f"{server}{path}")
            if path == "/console/heatmap/":
                page.hover("#heatmap .cell")  # the script's words too
            if found := _english_left(page):
                left[path] = found
    assert left == {}, left
    page = _login(browser, server, "operator", "/console/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": server}])
    page.reload()
    _connected(page)
    page.locator("#event-feed li").first.wait_for()
    before = page.locator("#event-feed li").count()
    _ask(server, "acme-user", compute_units=25)  # queued too: its events arrive over the socket
    page.wait_for_function(f"() => document.querySelectorAll('#event-feed li').length > {before}", timeout=5_000)
    page.wait_for_timeout(1_200)  # the capacity tiles follow at most once a second
    assert _english_left(page) == []
    assert "排队中" in page.locator("#event-feed").inner_text()


def test_quotas_and_prices_read_as_figures_with_units(server, browser, bj):
    import re

    from tenants.models import Quota, Role

    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    Quota.objects.filter(tenant__slug="acme").update(limit_memory_mib=640 * 1024, guarantee_memory_mib=320 * 1024)
    page = _login(browser, server, "acme-user", "/t/acme/")
    quotas = page.locator("table", has=page.locator("th", has_text="Scope")).inner_text()
    assert "0 units / 800 units" in quotas and "(400 units guaranteed)" in quotas, quotas
    assert "0 MiB / 640 GiB" in quotas and "(320 GiB guaranteed)" in quotas, quotas
    assert "(g " not in quotas and not re.search(r"\b0u\b", quotas) and "655360" not in quotas
    page = _login(browser, server, "operator", "/console/billing/")
    cells = page.locator("table", has=page.locator("th", has_text="GPU-hour")).locator("td.num").all_inner_texts()
    assert cells == ["100.00", "0.00"], cells  # a GPU-hour and a GiB-hour with the same two decimals (stored with 4 and 6)


def _sockets(page) -> list:
    """The websockets the page opens from now on (reload it to count its own)."""
    opened = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def test_the_queue_shows_why_each_waits_and_follows_the_queue_live(server, browser, bj):
    from tenants.models import Quota

    _member("acme")
    _member("globex")
    _user("operator", is_staff=True)
    full = _ask(server, "acme-user", compute_units=100, count=4, priority="realtime")  # every GPU, and nothing to preempt
    waiting = _ask(server, "globex-user", compute_units=50, memory_mib=2048)
    page = _login(browser, server, "operator", "/console/queue/")
    sockets = _sockets(page)
    page.reload()
    _connected(page)
    row = page.locator(f"#queued-{waiting.id}")
    assert row.get_attribute("data-blocker") == "room" and row.get_attribute("data-position") == "1"
    assert "4 GPUs of its kind, the freest with 0 units and 79 GiB" in row.inner_text()
    assert row.locator("[data-remedy=wait]").count() == 1
    started = time.monotonic()
    second = _ask(server, "globex-user", compute_units=30, priority="realtime")  # first in line: realtime goes before offline
    page.locator(f"#queued-{second.id}").wait_for(timeout=2_000)
    assert time.monotonic() - started < 2.5
    assert page.locator("#queue-rows tbody tr").count() == 2 and page.locator(f"#queued-{waiting.id}").get_attribute("data-position") == "2"
    Quota.objects.filter(tenant__slug="globex").update(limit_compute_units=60, guarantee_compute_units=40)  # room next, not quota
    assert full.release().status_code == 200
    page.wait_for_function(f"() => document.querySelector('#queued-{second.id}') === null", timeout=4_000)  # it ran
    page.wait_for_function(f"() => document.querySelector('#queued-{waiting.id}')?.dataset.blocker === 'quota'", timeout=4_000)
    blocker = page.locator(f"#queued-{waiting.id} .blocker").inner_text()
    assert "30 units held of a limit of 60 units; asks 50 units" in blocker and "a quota raise of 20 units" in blocker, blocker
    assert len(sockets) == 1
    page = _login(browser, server, "globex-user", "/t/globex/queue/")  # a tenant sees its own queue, with its place in the whole
    assert page.locator("#queue-rows tbody tr").count() == 1 and page.locator(f"#queued-{waiting.id}").count() == 1
    assert page.goto(f"{server}/t/acme/queue/").status == 404 and page.goto(f"{server}/console/queue/").status == 403


def test_an_allocation_page_follows_it_from_the_queue_to_running(server, browser, bj):
    from tenants.models import Role

    _member("acme", role=Role.OWNER)
    full = _ask(server, "acme-user", compute_units=100, count=4)
    waiting = _ask(server, "acme-user", compute_units=50, memory_mib=2048)
    page = _login(browser, server, "acme-user", f"/allocations/{waiting.id}/")
    sockets = _sockets(page)
    page.reload()
    _connected(page)
    live = page.locator("#allocation-live")
    assert live.get_attribute("data-state") == "queued" and "number 1 in the queue" in live.inner_text()
    started = time.monotonic()
    assert full.release().status_code == 200
    page.wait_for_function("() => document.querySelector('#allocation-live').dataset.state === 'running'", timeout=2_000)
    assert time.monotonic() - started < 2.5
    assert page.locator("#allocation-slices tbody tr").count() == 1 and "bj" in page.locator("#allocation-slices").inner_text()
    history = page.locator("#allocation-history li").all_inner_texts()
    assert [h.split(" → ")[1].split(" ")[0].strip() for h in history][-1].startswith("running"), history
    assert page.locator("#launch-env-0").count() == 1  # the owner sees how to launch on it
    assert len(sockets) == 1
    page = _login(browser, server, "acme-user", f"/allocations/{full.id}/")
    assert "released" in page.locator("#allocation-live").get_attribute("data-state")


def test_the_heatmap_shows_who_holds_each_gpu_on_hover_and_focus_and_follows_allocations(server, browser, bj):
    _member("acme")
    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", f"/console/pools/{bj.id}/heatmap/")
    sockets = _sockets(page)
    page.reload()
    _connected(page)
    assert page.locator("#heatmap .cell").count() == 4 and page.locator("#heatmap .cell[data-value='0']").count() == 4
    started = time.monotonic()
    allocation = _ask(server, "acme-user", compute_units=60)
    gpu = allocation.slices.get().accelerator_id
    page.wait_for_function(f"() => document.querySelector('#gpu-cell-{gpu}').dataset.value === '60'", timeout=2_000)
    assert time.monotonic() - started < 2.5
    page.hover(f"#gpu-cell-{gpu}")
    tip = page.locator("#heatmap-tip").inner_text()
    assert "acme 60 units" in tip and str(allocation.id)[:8] in tip and "60 / 100 units" in tip, tip
    page.focus("#heatmap")
    page.keyboard.press("Home")
    first = page.locator("#heatmap").get_attribute("aria-activedescendant")
    page.keyboard.press("ArrowRight")
    assert page.locator("#heatmap").get_attribute("aria-activedescendant") not in (None, first)
    assert "bj · n01 #1 · A100-SXM4-80GB" in page.locator("#heatmap-tip").inner_text()  # the second GPU, as the keys moved
    page.select_option("#heatmap-mode", "utilization")
    assert page.locator(f"#gpu-cell-{gpu}").get_attribute("data-value") != "60"  # coloured by what the agent reports now
    assert len(sockets) == 1


def test_the_fleet_heatmap_draws_ten_thousand_gpus(server, browser, bj):
    from pools.models import Accelerator, Node, Pool

    _user("operator", is_staff=True)
    big = Pool.objects.create(name="big", region="cn-test", agent_url="http://127.0.0.1:9/", token_prefix="x", status="healthy")
    nodes = Node.objects.bulk_create([Node(pool=big, name=f"n{i:04d}") for i in range(1250)])
    Accelerator.objects.bulk_create([Accelerator(pool=big, node=node, uuid=f"GPU-{node.name}-{i}", index=i, vendor="NVIDIA",
                                                 model="H100-SXM5-80GB", memory_mib=81920, allocated_compute_units=(n * 7) % 101)
                                     for n, node in enumerate(nodes) for i in range(8)])  # fmt: skip
    page = _login(browser, server, "operator", "/console/")
    started = time.monotonic()
    page.goto(f"{server}/console/heatmap/")
    page.wait_for_function("() => document.querySelector('#heatmap').dataset.cells === '10004'", timeout=10_000)
    took = time.monotonic() - started
    drawn = page.locator("#heatmap").get_attribute("data-drawn-ms")
    print(f"fleet heatmap, 10,004 GPUs: page and cells in {took * 1000:.0f} ms, cells drawn in {drawn} ms")  # bench/heatmap.py measures
    assert page.locator("#heatmap .cells").count() == 2  # a block per pool


def test_trends_and_spend_by_project_are_charts_with_axes_and_times(server, browser, bj):
    import re

    from billing.models import UsageRecord
    from pools.models import GpuSeries
    from tenants.models import Role

    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    allocation = _ask(server, "acme-user", compute_units=100)
    deadline = time.monotonic() + 15
    while not GpuSeries.objects.exists() and time.monotonic() < deadline:  # the agent's figures, sampled every second here
        time.sleep(0.3)
    assert allocation.release().status_code == 200
    while not UsageRecord.objects.exists() and time.monotonic() < deadline:  # its hour closes in the ledger at the next run
        time.sleep(0.3)
    page = _login(browser, server, "operator", "/console/trends/?days=1")
    for chart in ("#trend-utilization", "#trend-allocated", "#trend-spend"):
        svg = page.locator(chart)
        box = svg.evaluate("svg => svg.viewBox.baseVal.width")
        xs = [float(v) for points in svg.locator("polyline").evaluate_all("ls => ls.map(l => l.getAttribute('points'))")
              for v in re.findall(r"([\d.]+),", points)]  # fmt: skip
        assert xs and all(0 <= x <= box for x in xs), (chart, xs)
        ticks = svg.locator("text.tick").all_text_contents()
        assert len([t for t in ticks if re.fullmatch(r"\d\d:\d\d", t)]) >= 5 and "0" in " ".join(ticks), (chart, ticks)
        assert svg.locator("line.axis").count() == 2
    assert "100%" in page.locator("#trend-allocated").text_content()
    assert page.locator("#trend-spend polyline title").first.text_content() == "acme"
    page = _login(browser, server, "acme-user", "/t/acme/billing/")
    assert page.locator("#spend-by-project polyline title").first.text_content() == "main"
    dates = page.locator("#spend-by-project text.tick").all_text_contents()
    assert len([d for d in dates if re.fullmatch(r"\d\d-\d\d", d)]) >= 5, dates


def _downloaded(page, link) -> list[list[str]]:
    import csv
    import io

    with page.expect_download() as download:
        link.click()
    with open(download.value.path(), encoding="utf-8-sig") as saved:
        return list(csv.reader(io.StringIO(saved.read())))


def test_lists_export_as_csv_that_no_spreadsheet_reads_as_formulas(server, browser, bj):
    from billing.models import UsageRecord
    from ocenter.models import AuditEntry
    from pools.models import Allocation
    from tenants.models import Role, Tenant

    _member("acme", role=Role.OWNER)
    _user("operator", is_staff=True)
    tenant = Tenant.objects.get(slug="acme")
    Allocation.objects.bulk_create([Allocation(tenant=tenant, project=tenant.projects.get(), compute_units=10, memory_mib=100,
                                               state="failed", reason="=HYPERLINK(\"http://evil\")") for _ in range(60)])  # fmt: skip
    AuditEntry.objects.create(actor_label="-2+3", action="test.export", object_type="test", object_repr="@SUM(A1:A9)", tenant_id=tenant.id)
    allocation = _ask(server, "acme-user", compute_units=100)
    assert allocation.release().status_code == 200
    deadline = time.monotonic() + 15
    while not UsageRecord.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    page = _login(browser, server, "operator", "/console/allocations/?state=failed")
    rows = _downloaded(page, page.locator("a.export"))
    assert rows[0][:4] == ["id", "tenant", "project", "state"] and len(rows) == 61  # all 60 filtered, not the first page of 50
    reasons = {row[rows[0].index("reason")] for row in rows[1:]}
    assert reasons == {'\'=HYPERLINK("http://evil")'}
    page.goto(f"{server}/console/audit/?action=test.export")
    (header, entry) = _downloaded(page, page.locator("a.export"))
    assert entry[header.index("actor")] == "'-2+3" and entry[header.index("object")] == "'@SUM(A1:A9)"
    page = _login(browser, server, "acme-user", "/t/acme/billing/")
    usage = _downloaded(page, page.locator("a.export"))
    assert len(usage) >= 2 and usage[1][usage[0].index("tenant")] == "acme" and float(usage[1][usage[0].index("compute_units")]) == 100


def test_a_person_chooses_their_time_zone_and_every_time_follows_it(server, browser, bj):
    from zoneinfo import ZoneInfo

    from ocenter.models import AuditEntry

    _user("operator", is_staff=True)
    page = _login(browser, server, "operator", "/preferences/", timezone_id="Asia/Shanghai")
    page.reload()
    assert page.locator(".tz").inner_text() == "Asia/Shanghai"  # the browser's, until one is chosen
    page.select_option("#id_time_zone", "America/New_York")
    page.click("form.card button[type=submit]")
    page.wait_for_url(lambda u: u.endswith("/preferences/"))
    assert page.locator(".tz").inner_text() == "America/New_York"
    entry = AuditEntry.objects.get(action="preferences.update")
    assert entry.changes == {"time_zone": ["", "America/New_York"]}
    page.goto(f"{server}/console/audit/")
    shown = page.locator("tr", has_text="preferences.update").locator("time").inner_text()
    assert shown == entry.at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S")
    page.context.clear_cookies()  # the choice is the person's: a new session (log in again) keeps it
    _sign_in(page, server, "operator", "/console/")
    assert page.locator(".tz").inner_text() == "America/New_York"


def test_dark_mode_follows_the_system(server, browser, bj):
    _member("acme")
    for scheme, background in [("light", "rgb(246, 247, 249)"), ("dark", "rgb(13, 17, 23)")]:
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        page.goto(f"{server}/login/")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background, scheme
        field = page.evaluate("getComputedStyle(document.querySelector('#id_username')).backgroundColor")
        assert (field == "rgb(255, 255, 255)") == (scheme == "light"), (scheme, field)
        context.close()
