"""The foundation's Celery tasks: webhook deliveries."""

from celery import shared_task

from ocenter.webhooks import deliveries_send


@shared_task(name="ocenter.tasks.deliver_webhooks")
def deliver_webhooks(ids=None) -> int:
    """Send the webhook deliveries due (of ``ids``, when given: those just made); the periodic run sends the retries."""
    return deliveries_send(ids=ids)
