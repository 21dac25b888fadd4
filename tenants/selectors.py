"""Reads of tenants' data, shaped for pages and the API."""

from django.conf import settings
from django.utils.module_loading import import_string

from tenants.quotas import QuotaUsage, quota_usage


def usage_rows(tenant_ids) -> dict:
    """``{tenant_id: [UsageRow]}`` from the source named in settings (pools knows what is held)."""
    source = settings.OCENTER_USAGE_SOURCE
    if not source:
        return {}
    return import_string(source)(tenant_ids=tenant_ids)


def month_spend(tenant_ids) -> dict:
    """``{tenant_id: {"spent", "budget", "percent", "currency"}}`` this month, from the source named in settings (billing knows money)."""
    source = settings.OCENTER_TENANT_SPEND
    return import_string(source)(list(tenant_ids)) if source else {}


def quotas_with_usage(quotas) -> list[QuotaUsage]:
    """Each quota with what its tenant holds under it; one usage read for all."""
    quotas = list(quotas)
    rows = usage_rows({q.tenant_id for q in quotas})
    return [quota_usage(q, rows.get(q.tenant_id, [])) for q in quotas]
