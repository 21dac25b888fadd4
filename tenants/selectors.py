"""Reads of tenants' data, shaped for pages and the API."""

from ocenter.seams import seams
from tenants.quotas import QuotaUsage, quota_usage


def month_spend(tenant_ids) -> dict:
    """``{tenant_id: {"spent", "budget", "percent", "currency"}}`` this month (billing answers, through ``ocenter.seams``)."""
    return seams.spend(list(tenant_ids))


def quotas_with_usage(quotas) -> list[QuotaUsage]:
    """Each quota with what its tenant holds under it; one usage read for all (pools answers, through ``ocenter.seams``)."""
    quotas = list(quotas)
    rows = seams.usage({q.tenant_id for q in quotas})
    return [quota_usage(q, rows.get(q.tenant_id, [])) for q in quotas]
