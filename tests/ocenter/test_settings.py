"""Settings come from the environment, with safe production defaults."""

import os
import subprocess
import sys
from pathlib import Path

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
