"""The foundation's Celery tasks, where Celery's autodiscovery looks: webhook deliveries (ocenter/webhooks.py)."""

from ocenter.webhooks import deliver_webhooks

__all__ = ["deliver_webhooks"]
