"""Reads of tenants' data, shaped for pages and the API."""

from functools import cache

from django.db import connection

from ocenter.lib.rows import columns, fetch, instance, param
from ocenter.seams import seams
from tenants.models import ApiToken, Invitation, Project, Quota, Tenant
from tenants.quotas import QuotaUsage, quota_usage


@cache
def _project_sql() -> str:
    return (f"SELECT {columns(Project, 'p')}, {columns(Tenant, 't', 'tenant__')} FROM tenants_project p "
            "JOIN tenants_tenant t ON t.id = p.tenant_id WHERE p.id = %s")  # fmt: skip


def project_for(access, project_id) -> Project | None:
    """The project, with its tenant, if it exists and ``access`` reaches its tenant (one query: a request's hot path)."""
    rows = fetch(_project_sql(), [param(Project._meta.pk, project_id)])
    if not rows:
        return None
    project = instance(Project, rows[0], tenant=instance(Tenant, rows[0], "tenant__"))
    reached = access.tenant_ids()
    return project if reached is None or project.tenant_id in reached else None


def tenant_locked(tenant_id) -> Tenant:
    """The tenant's row, locked until the transaction ends: its admissions go one at a time (``SELECT … FOR UPDATE``)."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return instance(
        Tenant, fetch(f"SELECT {columns(Tenant, 't')} FROM tenants_tenant t WHERE id = %s{lock}", [param(Tenant._meta.pk, tenant_id)])[0]
    )


def tenant_quotas(tenant_id) -> list[Quota]:
    """Every quota of the tenant, tenant-wide and per project: read once a request, for placement and admission alike."""
    rows = fetch(f"SELECT {columns(Quota, 'q')} FROM tenants_quota q WHERE tenant_id = %s", [param(Tenant._meta.pk, tenant_id)])
    return [instance(Quota, row) for row in rows]


def month_spend(tenant_ids) -> dict:
    """``{tenant_id: {"spent", "budget", "percent", "currency"}}`` this month (billing answers, through ``ocenter.seams``)."""
    return seams.spend(list(tenant_ids))


def quotas_with_usage(quotas) -> list[QuotaUsage]:
    """Each quota with what its tenant holds under it; one usage read for all (pools answers, through ``ocenter.seams``)."""
    quotas = list(quotas)
    rows = seams.usage({q.tenant_id for q in quotas})
    return [quota_usage(q, rows.get(q.tenant_id, [])) for q in quotas]


def invitation_by_secret(secret: str) -> Invitation | None:
    """The open invitation this link's secret is for, or None (unknown, accepted, expired)."""
    invitation = Invitation.objects.select_related("tenant").filter(secret_hash=ApiToken.hash_secret(secret)).first()
    return invitation if invitation and invitation.open else None
