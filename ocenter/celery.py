"""
The Celery app. Tasks are thin: they take ids and call services.

Without REDIS_URL (the embedded default) tasks run in the process that
enqueues them, and ``ocenter.jobs`` plays the part of beat.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")

app = Celery("ocenter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
