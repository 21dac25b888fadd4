import pytest
from django.db import IntegrityError

from ocenter.models import AuditEntry
from tenants.models import Tenant
from tenants.services import tenant_create

pytestmark = pytest.mark.django_db


def test_creating_a_tenant_is_audited(staff):
    tenant = tenant_create(actor=staff, slug="acme", name="Acme Robotics")
    entry = AuditEntry.objects.get(action="tenant.create")
    assert entry.tenant_id == tenant.id and entry.actor == staff and entry.changes == {"slug": "acme", "name": "Acme Robotics"}


def test_the_database_refuses_an_unknown_status():
    with pytest.raises(IntegrityError):
        Tenant.objects.create(slug="x", name="X", status="deleted")
