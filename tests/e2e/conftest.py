"""A real oCenter server (uvicorn, websockets, embedded jobs) over the test database, and real headless Chromium."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from tests.servers import answering, free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _serve(port=None, **env_overrides):
    """oCenter on ``port`` (a free one when None) over the test database, with 1-second pool syncs; yields its URL."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "ocenter.settings",
            "DEBUG": "1",
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": _database_url(),
            "OCENTER_EMBEDDED_JOBS": "1",
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "OCENTER_POOL_SYNC_SECONDS": "1",
            "OCENTER_METER_SECONDS": "1",
            "OCENTER_AGENT_TIMEOUT": "1",
            "OCENTER_AGENT_CONNECT_TIMEOUT": "0.5",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "WARNING",
            **env_overrides,
        }
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "ocenter.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "on",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    if answering(f"{url}/healthz") is None:
        process.kill()
        pytest.fail(f"the server did not start: {process.stdout.read()}")
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def server(transactional_db):
    """oCenter with its embedded default: in-process live updates and jobs."""
    yield from _serve()


@pytest.fixture
def server_on_redis(transactional_db, redis_server):
    """oCenter whose live updates go through a private Redis, which the test may stop and start."""
    for url in _serve(REDIS_URL=redis_server.url):
        yield url, redis_server


@pytest.fixture
def browser(monkeypatch):
    if not Path(CHROMIUM).exists():
        if os.environ.get("OCENTER_REQUIRE_SERVICES"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium")
        pytest.skip(f"needs {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are still plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # The test's ORM calls ran inside Playwright's loop, in a context of their own: close that
        # connection here, or it outlives the test and the test database cannot be dropped.
        connections.close_all()
