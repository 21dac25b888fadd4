"""API views of the project's top: the audit log."""

from django.core.exceptions import PermissionDenied
from rest_framework import viewsets

from ocenter.api import ModelSerializer
from ocenter.filters import AuditEntryFilter
from ocenter.models import AuditEntry
from tenants.access import Access
from tenants.models import Role


class AuditEntrySerializer(ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor_label", "tenant_id", "action", "object_type", "object_id", "object_repr", "changes", "source_ip"]


def audit_entries_for(access: Access):
    """Staff read every entry; a tenant's admins and owners read that tenant's; nobody else any."""
    entries = AuditEntry.objects.order_by("-at", "id")
    if access.is_staff:
        return entries
    admin_of = [tid for tid, role in access.roles.items() if Role.rank(role) >= Role.rank(Role.ADMIN)]
    if not admin_of:
        raise PermissionDenied("The audit log is for platform staff and tenant admins.")
    return entries.filter(tenant_id__in=admin_of)


class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Every change to oCenter: who, on whose behalf, what, from where, when."""

    queryset = AuditEntry.objects.none()  # for the schema; get_queryset decides
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return audit_entries_for(Access.of(self.request))
