"""Money: the price book, metered usage, budgets and their alerts, statements."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from pools.models import Allocation

# The classes of work are the allocations' own: a price or a usage record names one of them.
PRIORITIES = Allocation.Priority.choices

# A budget's grace after 100 % before it stops everything: at most 90 days.
MAX_GRACE_SECONDS = 90 * 86400


class Price(models.Model):
    """What a GPU-hour of compute and a GiB-hour of memory cost, from a moment on.

    Blank pool, model, template or class match any; the most specific price
    wins, and among equally specific ones the latest in effect. A template
    (an Ascend vNPU's vir05_1c_16g) prices the slices cut to it: each costs
    its template's compute and memory at these rates.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool_name = models.SlugField(max_length=63, blank=True)
    accelerator_model = models.CharField(max_length=64, blank=True)
    template = models.CharField(max_length=64, blank=True, default="")
    priority = models.CharField(max_length=16, choices=PRIORITIES, blank=True)
    # Per whole GPU (100 compute units) per hour, and per GiB of GPU memory per hour.
    compute_gpu_hour = models.DecimalField(max_digits=14, decimal_places=4, validators=[MinValueValidator(0)])
    memory_gib_hour = models.DecimalField(max_digits=14, decimal_places=6, default=0, validators=[MinValueValidator(0)])
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pool_name", "accelerator_model", "template", "priority", "effective_from", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pool_name", "accelerator_model", "template", "priority", "effective_from"], name="price_unique_moment"
            ),
            models.CheckConstraint(condition=Q(compute_gpu_hour__gte=0, memory_gib_hour__gte=0), name="price_not_negative"),
        ]

    def __str__(self):
        scope = " / ".join(x for x in (self.pool_name, self.accelerator_model, self.template, self.priority) if x) or "everything"
        return f"{scope} from {self.effective_from:%Y-%m-%d %H:%M}"

    @property
    def specificity(self) -> int:
        return bool(self.pool_name) + bool(self.accelerator_model) + bool(self.template) + bool(self.priority)

    def matches(self, pool_name: str, accelerator_model: str, priority: str, template: str = "") -> bool:
        return (
            self.pool_name in ("", pool_name)
            and self.accelerator_model in ("", accelerator_model)
            and self.template in ("", template)
            and self.priority in ("", priority)
        )


class UsageRecord(models.Model):
    """Exact running time of one slice over one interval, priced.

    Intervals are cut at price changes and at midnight (the configured time
    zone), so each record has one price and one day. The database refuses
    a second record for the same slice and start (and, on PostgreSQL, any
    overlapping interval): metering twice never charges twice.
    """

    # Every run writes a record per running slice: no index here that another one already serves
    # (slice: by its unique (slice, start); tenant: by (tenant, start)).
    slice = models.ForeignKey("pools.Slice", on_delete=models.PROTECT, related_name="usage", db_index=False)
    allocation = models.ForeignKey("pools.Allocation", on_delete=models.PROTECT, related_name="usage")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="usage", db_index=False)
    project = models.ForeignKey("tenants.Project", on_delete=models.PROTECT, related_name="usage")
    pool_name = models.CharField(max_length=63)
    accelerator_model = models.CharField(max_length=64)
    template = models.CharField(max_length=64, blank=True, default="")
    priority = models.CharField(max_length=16, choices=PRIORITIES)
    start = models.DateTimeField()
    end = models.DateTimeField()
    day = models.DateField()
    seconds = models.DecimalField(max_digits=16, decimal_places=6)
    compute_units = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    price = models.ForeignKey(Price, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=18, decimal_places=6)

    class Meta:
        ordering = ["start", "id"]
        indexes = [
            models.Index(fields=["tenant", "start"], name="usage_tenant_start"),
            models.Index(fields=["slice", "end"], name="usage_slice_end"),
            models.Index(fields=["day"], name="usage_day"),  # today's spend, whatever the size of the ledger
        ]
        constraints = [
            models.UniqueConstraint(fields=["slice", "start"], name="usage_once_per_slice_start"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="usage_end_after_start"),
        ]

    def __str__(self):
        return f"{self.slice_id} {self.start:%Y-%m-%d %H:%M:%S}+{self.seconds}s {self.amount}"


class SliceMeter(models.Model):
    """How far one slice's running time has been metered: billing's watermark, moved in the transaction that writes its usage.

    A slice with none was never metered. Kept by billing, beside the slices it
    reads, so that metering writes only its own tables.
    """

    slice = models.OneToOneField("pools.Slice", primary_key=True, on_delete=models.CASCADE, related_name="meter")
    metered_until = models.DateTimeField()

    def __str__(self):
        return f"{self.slice_id} metered until {self.metered_until:%Y-%m-%d %H:%M:%S}"


class Budget(models.Model):
    """A spending limit for a tenant or one of its projects, per month or in total, with alerts and an action at the limit."""

    class Period(models.TextChoices):
        MONTHLY = "monthly", _("monthly")
        TOTAL = "total", _("fixed total")

    class Action(models.TextChoices):
        NOTIFY = "notify", _("only notify")
        REFUSE = "refuse", _("refuse new allocations")
        STOP_BORROWED = "stop_borrowed", _("stop offline and interruptible work")
        STOP_ALL = "stop_all", _("stop everything after a grace period")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="budgets")
    project = models.ForeignKey("tenants.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTHLY)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    thresholds = models.JSONField(default=list, help_text="percentages that alert, e.g. [50, 80, 100]")
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.NOTIFY)
    grace_seconds = models.PositiveIntegerField(default=3600, validators=[MaxValueValidator(MAX_GRACE_SECONDS)])
    # For a fixed total: from when it counts.
    starts_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "project__slug", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant"], condition=Q(project__isnull=True), name="budget_one_per_tenant"),
            models.UniqueConstraint(fields=["project"], condition=Q(project__isnull=False), name="budget_one_per_project"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
        ]

    def __str__(self):
        return f"{self.tenant.slug}{'/' + self.project.slug if self.project_id else ''} {self.period} {self.amount}"

    @property
    def is_hard(self) -> bool:
        return self.action != self.Action.NOTIFY


class BudgetAlert(models.Model):
    """A threshold crossed in a period: at most one per budget, period and threshold (the database says so)."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spent = models.DecimalField(max_digits=18, decimal_places=2)
    fired_at = models.DateTimeField()

    class Meta:
        ordering = ["-fired_at", "id"]
        constraints = [models.UniqueConstraint(fields=["budget", "period_start", "threshold"], name="alert_once_per_period")]

    def __str__(self):
        return f"{self.budget} {self.threshold}% at {self.fired_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """A message for a tenant's people, shown in the portal and pushed live."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return self.message


class Statement(models.Model):
    """A tenant's bill for one month. Once closed it never changes; corrections go in as adjustments."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="statements")
    month = models.DateField(help_text="the first day of the month")
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=16, decimal_places=2)
    closed_at = models.DateTimeField()
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-month", "tenant__slug"]
        constraints = [models.UniqueConstraint(fields=["tenant", "month"], name="statement_once_per_month")]

    def __str__(self):
        return f"{self.tenant.slug} {self.month:%Y-%m} {self.total} {self.currency}"


class StatementLine(models.Model):
    """One line of a closed statement: a project, pool, model, template and class, rounded to the cent."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="lines")
    project = models.ForeignKey("tenants.Project", null=True, on_delete=models.PROTECT, related_name="+")
    pool_name = models.CharField(max_length=63, blank=True)
    accelerator_model = models.CharField(max_length=64, blank=True)
    template = models.CharField(max_length=64, blank=True, default="")
    priority = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=200)
    gpu_hours = models.DecimalField(max_digits=16, decimal_places=4)
    amount = models.DecimalField(max_digits=16, decimal_places=2)

    class Meta:
        ordering = ["statement", "id"]

    def __str__(self):
        return f"{self.description}: {self.amount}"


class Adjustment(models.Model):
    """A correction to a tenant's bill, counted in the month it is made (never in a closed one)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="adjustments")
    month = models.DateField()
    amount = models.DecimalField(max_digits=16, decimal_places=2)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self):
        return f"{self.tenant.slug} {self.month:%Y-%m} {self.amount}: {self.reason}"
