import django_filters

from ocenter.models import AuditEntry


class AuditEntryFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="startswith")

    class Meta:
        model = AuditEntry
        fields = ["tenant_id", "action", "object_type", "object_id", "actor", "since", "until"]
