"""Celery tasks for billing: thin wrappers over services."""

from celery import shared_task

from billing.services import budgets_evaluate, usage_meter


@shared_task
def meter_usage() -> dict:
    """Meter running time into usage records, then check every budget (periodic)."""
    written = usage_meter()
    return {"records": written, **budgets_evaluate()}
