"""Writes to tenants: validated, locked, audited."""

from django.db import transaction

from ocenter.audit import audit_record
from tenants.models import Tenant


@transaction.atomic
def tenant_create(*, actor, slug: str, name: str) -> Tenant:
    """Create a tenant and record it in the audit log."""
    tenant = Tenant.objects.create(slug=slug, name=name)
    audit_record(actor=actor, action="tenant.create", obj=tenant, tenant_id=tenant.id, changes={"slug": slug, "name": name})
    return tenant
