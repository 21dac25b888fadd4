"""oCenter: one management center for many GPU resource pools."""

from ocenter.celery import app as celery_app

__all__ = ("celery_app",)
