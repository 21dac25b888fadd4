"""The foundation's models: the audit log, which every app writes to, and each person's preferences."""

import uuid

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One change to oCenter's state: who, on whose behalf, what, from where.

    Entries outlive what they describe, so the tenant and object are kept as
    plain values, not foreign keys that a deletion would cascade or blank.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # "alice", "token ocn_AbC1…", "system": what the actor was, even after it is gone.
    actor_label = models.CharField(max_length=150)
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.object_repr}"


class Preferences(models.Model):
    """How one person reads oCenter: the time zone of every time shown (blank: their browser's)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="preferences")
    time_zone = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self):
        return f"{self.user_id}: {self.time_zone or 'browser'}"


class Webhook(models.Model):
    """An HTTPS endpoint a tenant's admins (or staff, for the whole platform: ``tenant_id`` None) told of events."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list)  # kinds: allocation.updated, allocation.idle, budget.alert
    secret_ciphertext = models.TextField()  # the signing secret: shown once, kept encrypted (it signs every delivery)
    secret_prefix = models.CharField(max_length=12)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"webhook {self.url}"


class WebhookDelivery(models.Model):
    """One event sent (or to send) to one webhook: its body as signed, every try's outcome, when to try again."""

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=64)
    body = models.TextField()  # the JSON sent, byte for byte as signed
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.kind} to {self.webhook_id}: {self.state}"
