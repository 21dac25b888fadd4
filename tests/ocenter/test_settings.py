"""Settings come from the environment, with safe production defaults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _settings(**env) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "OCENTER_EMBEDDED_JOBS")
    }
    code = (
        "import ocenter.settings as s; "
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_TASK_ALWAYS_EAGER, s.OCENTER_EMBEDDED_JOBS, s.SESSION_COOKIE_SECURE, s.ALLOWED_HOSTS)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)


def test_production_refuses_to_start_without_a_secret_key():
    result = _settings()
    assert result.returncode != 0 and "Set SECRET_KEY" in result.stderr


def test_production_defaults_are_safe():
    result = _settings(SECRET_KEY="x" * 50, DATABASE_URL="postgres://u:p@127.0.0.1/db", REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 6) == [
        "False",
        "ocenter.db.postgresql",
        "channels_redis.core.RedisChannelLayer",
        "False",
        "False",
        "True",
        "[]\n",
    ]


def test_embedded_default_needs_nothing(tmp_path):
    result = _settings(DEBUG="1", OCENTER_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 6) == [
        "True",
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "True",
        "True",
        "False",
        "['127.0.0.1', 'localhost']\n",
    ]


@pytest.fixture
def broker_at(monkeypatch, settings):
    """Celery's broker (and the settings' Redis) at this URL for the test, and back after it."""
    from ocenter.celery import app

    def point(url):
        # Celery's own first, while it still reads (and keeps) the real settings: it loads them on first use.
        monkeypatch.setattr(app.conf, "broker_url", url)
        monkeypatch.setattr(app, "_pool", None)  # Celery keeps its connections per broker
        settings.REDIS_URL = settings.CELERY_BROKER_URL = url

    yield point
    app._pool = None


def test_readiness_says_each_dependency_and_fails_when_one_does(client, broker_at, redis_server, db):
    broker_at(redis_server.url)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}
    redis_server.stop()
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["database"] == "ok"
    assert down.json()["checks"]["redis"].startswith("failing: ") and down.json()["checks"]["broker"].startswith("failing: ")
    assert client.get("/healthz").status_code == 200  # liveness stays cheap: the database only


def test_readiness_of_the_embedded_default_needs_only_the_database(client, settings, db):
    settings.REDIS_URL, settings.CELERY_BROKER_URL = "", "memory://"
    answer = client.get("/readyz").json()
    assert answer == {"status": "ready", "checks": {"database": "ok", "redis": "not used", "broker": "not used"}}
