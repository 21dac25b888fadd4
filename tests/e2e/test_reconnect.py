"""A page's websocket dropped by a Redis restart reconnects by itself, fetches its live region again, and goes on being live."""

import pytest

from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.e2e.test_browser import PASSWORD, _user
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_pools_page_survives_a_redis_restart(server_on_redis, browser, agents):
    url, redis = server_on_redis
    agent = agents("bj", [a100_nodes(1, gpus=2)])
    pool = PoolFactory(name="bj", agent=agent)
    pool_sync(pool_id=pool.id)
    _user("operator", is_staff=True)

    page = browser.new_context().new_page()
    page.add_init_script("window.__opens = 0; document.addEventListener('htmx:wsOpen', () => window.__opens++)")
    page.goto(f"{url}/login/?next=/console/pools/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_function("() => window.__opens === 1", timeout=10_000)

    redis.stop()  # the server's consumers lose Redis: their sockets close
    page.wait_for_timeout(1500)
    with page.expect_request(lambda r: r.url.endswith("/console/pools/") and r.headers.get("hx-request") == "true", timeout=30_000):
        redis.start()
        page.wait_for_function("() => window.__opens >= 2", timeout=30_000)
    assert "bj" in page.inner_text("#live-pools")

    agent.stop()  # live again: the pool going down reaches the page without a reload
    page.wait_for_function("() => document.querySelector('#live-pools').innerText.includes('unreachable')", timeout=20_000)
    assert page.evaluate("window.__opens") >= 2
