"""Pools and the hardware oCenter mirrors from their agents."""

import uuid

from django.db import models
from django.db.models import Q

from ocenter.crypto import secretbox


class Pool(models.Model):
    """A GPU pool run by its own controller, reached through its agent."""

    class Status(models.TextChoices):
        NEW = "new", "new"  # registered, never synced
        HEALTHY = "healthy", "healthy"
        DEGRADED = "degraded", "degraded"  # answers, but reports a problem
        UNREACHABLE = "unreachable", "unreachable"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=63, unique=True)
    region = models.CharField(max_length=64)
    agent_url = models.URLField(max_length=255)
    # The bearer token oCenter sends to the agent: encrypted, since oCenter
    # must send it back; shown once at registration, never again.
    token_ciphertext = models.TextField()
    token_prefix = models.CharField(max_length=12)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    status_detail = models.CharField(max_length=500, blank=True)
    # oCenter's clock, not the agent's: when oCenter last heard from it.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    backend = models.CharField(max_length=32, blank=True)
    agent_version = models.CharField(max_length=32, blank=True)
    inventory_generation = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["new", "healthy", "degraded", "unreachable"]), name="pool_status_valid"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def agent_token(self) -> str:
        return secretbox().decrypt(self.token_ciphertext)

    def set_agent_token(self, token: str):
        self.token_ciphertext = secretbox().encrypt(token)
        self.token_prefix = token[:8]


class Node(models.Model):
    """A host in a pool, as its agent reported it."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=128)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    # Set when the agent stopped reporting it; kept, never silently deleted.
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pool", "name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="node_unique_per_pool")]

    def __str__(self):
        return f"{self.pool.name}/{self.name}"


class Accelerator(models.Model):
    """One physical GPU (or other accelerator), keyed by the uuid its agent reports."""

    class Health(models.TextChoices):
        HEALTHY = "healthy", "healthy"
        UNHEALTHY = "unhealthy", "unhealthy"

    # The mirror of the pool is denormalized onto each GPU: placement reads
    # GPUs by pool without a join.
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="accelerators")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="accelerators")
    uuid = models.CharField(max_length=96)
    index = models.PositiveSmallIntegerField()
    vendor = models.CharField(max_length=64)
    model = models.CharField(max_length=64)
    memory_mib = models.PositiveIntegerField()
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.HEALTHY)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pool", "node__name", "index"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "uuid"], name="accelerator_unique_per_pool"),
            models.CheckConstraint(condition=Q(memory_mib__gt=0), name="accelerator_memory_positive"),
            models.CheckConstraint(condition=Q(health__in=["healthy", "unhealthy"]), name="accelerator_health_valid"),
        ]

    def __str__(self):
        return f"{self.model} #{self.index} on {self.node.name}"

    @property
    def is_gone(self) -> bool:
        return self.gone_at is not None
