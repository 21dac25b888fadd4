"""Celery tasks for billing: thin wrappers over services (imported inside each body)."""

from celery import shared_task


@shared_task
def meter_usage() -> dict:
    """Meter running time into usage records, then check every budget (periodic)."""
    from billing.services import budgets_evaluate, usage_meter

    written = usage_meter()
    return {"records": written, **budgets_evaluate()}
