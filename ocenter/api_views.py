"""API views of the project's top: the audit log, webhooks."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ocenter import webhooks
from ocenter.api import ModelSerializer
from ocenter.filters import AuditEntryFilter
from ocenter.models import AuditEntry, Webhook, WebhookDelivery
from tenants.access import Access, require_role, require_staff
from tenants.api.serializers import TenantField
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


class WebhookSerializer(ModelSerializer):
    tenant = TenantField(required=False, allow_null=True, write_only=True, help_text="the tenant whose events it hears; none: all (staff)")
    events = serializers.ListField(child=serializers.CharField(), help_text=f"one or more of {', '.join(webhooks.KINDS)}")

    class Meta:
        model = Webhook
        fields = ["id", "tenant", "tenant_id", "url", "events", "secret_prefix", "active", "created_at"]
        read_only_fields = ["tenant_id", "secret_prefix", "active", "created_at"]


class WebhookDeliverySerializer(ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "kind", "state", "attempts", "last_status", "last_error", "next_attempt_at", "created_at", "delivered_at", "body"]


class WebhookViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Endpoints told of events, each delivery signed (ocenter/webhooks.py); a tenant's admins keep their tenant's, staff any."""

    queryset = Webhook.objects.none()
    serializer_class = WebhookSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        access = Access.of(self.request)
        hooks = Webhook.objects.order_by("-created_at", "id")
        if access.is_staff:
            return hooks
        return hooks.filter(tenant_id__in=[t for t, role in access.roles.items() if Role.rank(role) >= Role.rank(Role.ADMIN)])

    @extend_schema(responses={201: WebhookSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant, access = serializer.validated_data.get("tenant"), Access.of(request)
        if tenant is None:
            require_staff(access, "A platform webhook (one for every tenant's events)")
        else:
            require_role(access, tenant, Role.ADMIN, "Registering a webhook")
        data = serializer.validated_data
        webhook, secret = webhooks.webhook_create(actor=request.user, tenant_id=tenant.id if tenant else None, url=data["url"],
                                                  events=data["events"])  # fmt: skip
        body = WebhookSerializer(webhook).data
        body["secret"] = secret  # shown this once: every delivery is signed with it
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        webhooks.webhook_delete(actor=self.request.user, webhook=instance)

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """The webhook's last 100 deliveries, newest first, with each one's tries and outcome."""
        return Response(WebhookDeliverySerializer(self.get_object().deliveries.all()[:100], many=True).data)

    @extend_schema(request=None, responses=WebhookDeliverySerializer)
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<delivery_id>[0-9a-f-]{36})/redeliver")
    def redeliver(self, request, pk=None, delivery_id=None):
        """Send a delivery again, now."""
        delivery = self.get_object().deliveries.filter(id=delivery_id).first()
        if delivery is None:
            raise Http404("no such delivery of this webhook")
        return Response(WebhookDeliverySerializer(webhooks.delivery_redeliver(actor=request.user, delivery=delivery)).data)
