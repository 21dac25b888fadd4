"""The console and portal in real headless Chromium: what issue 14 found broken, each shown working."""

from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import price_set
from pools.services.sync import pool_sync
from tests.agents import a100_nodes
from tests.e2e.test_browser import _connected, _login, _member
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
    page.wait_for_function("() => document.querySelector('#fit') && /25\\.00/.test(document.querySelector('#fit').textContent)", timeout=5_000)
    page.fill("#id_compute_units", "50")
    page.wait_for_function("() => document.querySelector('#fit') && /50\\.00/.test(document.querySelector('#fit').textContent)", timeout=5_000)
    page.fill("#id_compute_units", "500")  # past a GPU: the preview says what is wrong
    page.wait_for_function("() => document.querySelector('#fit .fit-no') !== null", timeout=5_000)
    assert fit.count() == 1 and errors == []
