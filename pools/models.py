"""Pools and the hardware oCenter mirrors from their agents."""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ocenter.crypto import secretbox
from ocenter.lib.units import COMPUTE_UNITS_PER_GPU

LIVE_POOL_STATUSES = ("healthy", "degraded")
# A bound on what a request may ask per slice (16 TiB: more than any GPU has); the fleet bounds the rest.
MAX_SLICE_MEMORY_MIB = 2**24
# The most members one job array asks for (and one batch call to an agent carries).
MAX_ARRAY_MEMBERS = 500


class PoolQuerySet(models.QuerySet):
    def live(self):
        """Pools whose agent answers: their GPUs take work, or will once undrained."""
        return self.filter(status__in=LIVE_POOL_STATUSES)

    def placeable(self):
        """Live pools that take new placements (not draining)."""
        return self.live().filter(draining=False)


class Pool(models.Model):
    """A GPU pool run by its own controller, reached through its agent."""

    class Status(models.TextChoices):
        NEW = "new", _("new")  # registered, never synced
        HEALTHY = "healthy", _("healthy")
        DEGRADED = "degraded", _("degraded")  # answers, but reports a problem
        UNREACHABLE = "unreachable", _("unreachable")

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
    # When its agent's metrics were last turned into points (once a minute, by the sync).
    sampled_at = models.DateTimeField(null=True, blank=True)
    # Draining: no new placements; what runs keeps running.
    draining = models.BooleanField(default=False)
    # Price weight for the "cheapest" placement policy (billing's price book refines it).
    cost_weight = models.DecimalField(max_digits=8, decimal_places=4, default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PoolQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["new", "healthy", "degraded", "unreachable"]), name="pool_status_valid"),
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
    draining = models.BooleanField(default=False)

    class Meta:
        ordering = ["pool", "name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="node_unique_per_pool")]
        # Placement leaves drained nodes out on every request: there are few, and this finds them without a scan.
        indexes = [models.Index(fields=["pool"], name="node_draining", condition=Q(draining=True))]

    def __str__(self):
        return f"{self.pool.name}/{self.name}"


class AcceleratorQuerySet(models.QuerySet):
    """The rule "this GPU can take this slice", in one place: placement's reads and the statements that take room use it.

    Pools and drained nodes are left out by subqueries, not joins: the
    statements that take room lock the GPU rows they pick, and a join would
    lock the pool's and node's rows with them.
    """

    def serviceable(self):
        """Present, healthy GPUs of live pools: they take work, or will once their pool or node is undrained."""
        return self.filter(gone_at=None, health=Accelerator.Health.HEALTHY, pool_id__in=Pool.objects.live().values("id"))

    def placeable(self):
        """Serviceable GPUs that take new placements now: neither their pool nor their node is draining, and not in MIG mode."""
        return (
            self.filter(gone_at=None, health=Accelerator.Health.HEALTHY, pool_id__in=Pool.objects.placeable().values("id"))
            .exclude(node_id__in=Node.objects.filter(draining=True).values("id"))
            .exclude(enforcement=Accelerator.MIG)
        )

    def with_room(self, *, compute_units: int, memory_mib: int):
        """GPUs with this much compute and memory free: neither handed out nor held by processes no claim names.

        A slice smaller than the whole GPU needs a GPU that can hold one (``fractional``).
        """
        room = self.filter(
            allocated_compute_units__lte=COMPUTE_UNITS_PER_GPU - compute_units,
            memory_mib__gte=F("allocated_memory_mib") + F("outside_memory_mib") + memory_mib,
        )
        return room if compute_units >= COMPUTE_UNITS_PER_GPU else room.filter(fractional=True)


class Accelerator(models.Model):
    """One physical GPU (or other accelerator), keyed by the uuid its agent reports."""

    class Health(models.TextChoices):
        HEALTHY = "healthy", _("healthy")
        UNHEALTHY = "unhealthy", "unhealthy"

    MIG = "mig"  # the enforcement of a GPU in MIG mode: reported, not sliced

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
    health_reason = models.CharField(max_length=200, blank=True)
    # How the agent holds a slice on it to its share (mps, hami-core, exclusive, mig, simulated), and whether
    # it can hold a slice smaller than the whole GPU now (MPS needs its daemon; MIG and exclusive GPUs cannot).
    enforcement = models.CharField(max_length=16, blank=True)
    fractional = models.BooleanField(default=True)
    # The shapes it is cut to (Ascend vNPU templates: [{name, compute_units, memory_mib}], smallest first): a slice
    # on it is one of them or the whole device. Empty: any shape.
    templates = models.JSONField(default=list, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    gone_at = models.DateTimeField(null=True, blank=True)
    # What oCenter has handed out on this GPU: changed only by conditional
    # UPDATEs that keep them within the GPU (see services.allocations.room).
    allocated_compute_units = models.PositiveSmallIntegerField(default=0)
    allocated_memory_mib = models.PositiveIntegerField(default=0)
    # Memory that processes no claim names hold on it (the agent's metrics): taken, as far as placement goes.
    outside_memory_mib = models.PositiveIntegerField(default=0)

    objects = AcceleratorQuerySet.as_manager()

    class Meta:
        ordering = ["pool", "node__name", "index"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "uuid"], name="accelerator_unique_per_pool"),
            models.CheckConstraint(condition=Q(memory_mib__gt=0), name="accelerator_memory_positive"),
            models.CheckConstraint(condition=Q(allocated_compute_units__lte=COMPUTE_UNITS_PER_GPU), name="accelerator_units_within_gpu"),
            models.CheckConstraint(condition=Q(allocated_memory_mib__lte=F("memory_mib")), name="accelerator_memory_within_gpu"),
            models.CheckConstraint(condition=Q(health__in=["healthy", "unhealthy"]), name="accelerator_health_valid"),
        ]

    def __str__(self):
        return f"{self.model} #{self.index} on {self.node.name}"

    @property
    def is_gone(self) -> bool:
        return self.gone_at is not None


class Allocation(models.Model):
    """A tenant's request for ``count`` slices of GPU, and its life: queued → claiming → running → releasing → released.

    ``preempted`` and ``failed`` are ends too. Every transition is recorded in
    AllocationEvent. The slices it holds are Slice rows; while they hold
    capacity, the GPUs' ``allocated_*`` counters include them.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        CLAIMING = "claiming", _("claiming")
        RUNNING = "running", _("running")
        RELEASING = "releasing", _("releasing")
        RELEASED = "released", _("released")
        PREEMPTED = "preempted", _("preempted")
        FAILED = "failed", _("failed")

    class Priority(models.TextChoices):
        REALTIME = "realtime", _("realtime")
        INTERRUPTIBLE = "interruptible", _("interruptible")
        OFFLINE = "offline", _("offline")

    class Policy(models.TextChoices):
        BINPACK = "binpack", _("binpack")
        SPREAD = "spread", _("spread")
        CHEAPEST = "cheapest", _("cheapest")

    ACTIVE_STATES = (State.CLAIMING, State.RUNNING, State.RELEASING)
    ENDED_STATES = (State.RELEASED, State.PREEMPTED, State.FAILED)
    # What a request asks for: a requeued request asks it again; two requests under one idempotency key are one when these match.
    ASKED = ("project_id", "count", "compute_units", "memory_mib", "priority", "policy", "vendor", "accelerator_model",
             "pool_name", "region", "lease_seconds", "labels", "requeue_on_preempt")  # fmt: skip

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="allocations")
    project = models.ForeignKey("tenants.Project", on_delete=models.PROTECT, related_name="allocations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.OFFLINE)
    policy = models.CharField(max_length=16, choices=Policy.choices, default=Policy.BINPACK)
    count = models.PositiveSmallIntegerField(default=1)
    compute_units = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    # Constraints on where it may land; empty: anywhere.
    vendor = models.CharField(max_length=64, blank=True)
    accelerator_model = models.CharField(max_length=64, blank=True)
    pool_name = models.CharField(max_length=63, blank=True)
    region = models.CharField(max_length=64, blank=True)
    lease_seconds = models.PositiveIntegerField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    requeue_on_preempt = models.BooleanField(default=False)
    # The template its shape was rounded up to, where it asked for hardware cut to templates (vir05_1c_16g).
    template = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (NULL: no key; UNIQUE holds per key)
    # SHA-256 of the request made under that key: a different request under a used key is refused, not replayed.
    request_digest = models.CharField(max_length=64, blank=True)
    # Why it waits, failed or was preempted, in words for its owner.
    reason = models.CharField(max_length=500, blank=True)
    preempted_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="preempted")
    requeued_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="requeued_as")
    # Admitted beyond its tenant's guarantee: may be reclaimed by realtime work.
    borrowed = models.BooleanField(default=False)
    claim_attempts = models.PositiveSmallIntegerField(default=0)
    # A member of a job array (one request for many independent allocations): the array's id, and its place in it.
    array_id = models.UUIDField(null=True, blank=True, db_index=True)
    array_index = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Idle (see IdlePolicy): since when its slices showed no work, when it was flagged so and its owner told,
    # and when the policy acted on it (released, moved to offline, or, for realtime work, only warned).
    idle_since = models.DateTimeField(null=True, blank=True)
    idle_flagged_at = models.DateTimeField(null=True, blank=True)
    idle_acted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "state"], name="allocation_tenant_state"),
            # The queue, oldest first, however many have ended; and recent use, for fair shares.
            models.Index(fields=["created_at", "id"], condition=Q(state="queued"), name="allocation_queued"),
            models.Index(fields=["ended_at"], condition=Q(ended_at__isnull=False), name="allocation_ended"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(compute_units__gte=1, compute_units__lte=COMPUTE_UNITS_PER_GPU), name="allocation_units_1_100"
            ),
            models.CheckConstraint(condition=Q(memory_mib__gte=1), name="allocation_memory_positive"),
            models.CheckConstraint(condition=Q(count__gte=1, count__lte=64), name="allocation_count_1_64"),
            models.CheckConstraint(
                condition=Q(state__in=["queued", "claiming", "running", "releasing", "released", "preempted", "failed"]),
                name="allocation_state_valid",
            ),
            models.CheckConstraint(condition=Q(priority__in=["realtime", "interruptible", "offline"]), name="allocation_priority_valid"),
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], condition=Q(idempotency_key__isnull=False), name="allocation_idempotency_key"
            ),
        ]

    def __str__(self):
        return f"{self.count}×({self.compute_units}u, {self.memory_mib} MiB) {self.priority} [{self.state}]"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    def keep_slices(self, slices):
        """Make ``self.slices.all()`` answer these slices, in hand already, without a query (as ``prefetch_related`` does)."""
        kept = self.slices.all()
        kept._result_cache, kept._prefetch_done = list(slices), True
        self._prefetched_objects_cache = {**getattr(self, "_prefetched_objects_cache", {}), "slices": kept}

    @property
    def slices_kept(self) -> bool:
        """Whether its slices are in hand (prefetched, or kept by the service that just wrote them)."""
        return "slices" in getattr(self, "_prefetched_objects_cache", {})


class Slice(models.Model):
    """One slice of one GPU held by an allocation. Its id is the claim id on the agent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="slices")
    accelerator = models.ForeignKey(Accelerator, on_delete=models.PROTECT, related_name="slices")
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="slices")
    index = models.PositiveSmallIntegerField()
    compute_units = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    # True while it holds capacity on its GPU (claiming, running, releasing).
    active = models.BooleanField(default=True)
    env = models.JSONField(default=dict, blank=True)
    # What a workload applies to run in it where the pool is a cluster (a pod's resources, annotations, node and namespace).
    launch = models.JSONField(default=dict, blank=True)
    # When its allocation first ran with it: a slice given up before that never ran, and is never billed.
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["allocation", "index"]
        indexes = [models.Index(fields=["pool", "active"], name="slice_pool_active")]
        # A slice given up (its claim refused) stays for the record; its index is reused.
        constraints = [models.UniqueConstraint(fields=["allocation", "index"], condition=Q(active=True), name="slice_index_unique")]

    def __str__(self):
        return f"slice {self.index} of {self.allocation_id} on {self.accelerator_id}"


class AllocationEvent(models.Model):
    """One transition in an allocation's life: when, from what to what, by whom, why."""

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    actor_label = models.CharField(max_length=150)
    reason = models.CharField(max_length=500, blank=True)
    # Set on a step that changed the class of work (running → running, demoted): the class before it. Metering
    # prices the time before the step at this class, the time after at the allocation's (or the next such step's).
    previous_priority = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["at", "id"]
        # The console shows the latest changes of the whole fleet: read from the end of this index, not sorted.
        indexes = [models.Index(fields=["-at", "-id"], name="allocationevent_latest")]

    def __str__(self):
        return f"{self.from_state or '∅'} → {self.to_state}"


class Series(models.Model):
    """One subject's window of points, packed (see ``pools.series``): an hour of minutes, or a day of hours.

    Written in place as points arrive; minute rows are rolled up into hour rows
    and pruned after 7 days, hour rows after 90 (``series_prune``).
    """

    class Resolution(models.TextChoices):
        MINUTE = "minute", _("minute")
        HOUR = "hour", _("hour")

    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    start = models.DateTimeField()
    # Utilization in percent per point (of the GPU; of an allocation's own compute), memory used in MiB.
    utilization = models.BinaryField()
    memory_mib = models.BinaryField()
    rolled_up = models.BooleanField(default=False)  # a minute row whose hour is in its hour row

    class Meta:
        abstract = True


class GpuSeries(Series):
    """What one GPU did: its utilization and memory used, as its agent reported them."""

    accelerator = models.ForeignKey(Accelerator, on_delete=models.CASCADE, related_name="series")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["accelerator", "resolution", "start"], name="gpu_series_unique")]
        indexes = [models.Index(fields=["resolution", "start"], name="gpu_series_start")]

    def __str__(self):
        return f"GPU {self.accelerator_id} {self.resolution}s from {self.start:%Y-%m-%d %H:%M}"


class AllocationSeries(Series):
    """What one allocation did: its slices' utilization (mean and busiest), memory used and processes."""

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="series")
    busiest = models.BinaryField()  # the busiest slice's share of its own compute, percent
    processes = models.BinaryField()  # how many processes its slices ran

    class Meta:
        constraints = [models.UniqueConstraint(fields=["allocation", "resolution", "start"], name="allocation_series_unique")]
        indexes = [models.Index(fields=["resolution", "start"], name="allocation_series_start")]

    def __str__(self):
        return f"allocation {self.allocation_id} {self.resolution}s from {self.start:%Y-%m-%d %H:%M}"


class IdlePolicy(models.Model):
    """When running work counts as idle, and what then happens to it: the platform's default, or one tenant's own.

    Work is idle when every slice showed less than ``threshold_percent`` of its
    compute in use and no process for ``idle_minutes``. It is flagged and its
    owner told; after ``grace_minutes`` the action applies to offline and
    interruptible work (realtime work is only warned).
    """

    class Action(models.TextChoices):
        RELEASE = "release", _("release offline and interruptible work")
        DEMOTE = "demote", _("move interruptible work to offline, release offline work")
        NOTIFY = "notify", _("only tell its owner")

    platform = models.BooleanField(default=False)  # the default for every tenant without its own
    tenant = models.OneToOneField("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="idle_policy")
    threshold_percent = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(100)])
    idle_minutes = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)])
    grace_minutes = models.PositiveIntegerField(default=60, validators=[MaxValueValidator(7 * 24 * 60)])
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.RELEASE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(platform=True, tenant=None) | Q(platform=False, tenant__isnull=False),
                                   name="idle_policy_platform_or_tenant"),
            models.UniqueConstraint(fields=["platform"], condition=Q(platform=True), name="idle_policy_one_default"),
            models.CheckConstraint(condition=Q(threshold_percent__gte=1, threshold_percent__lte=100), name="idle_policy_threshold"),
            models.CheckConstraint(condition=Q(idle_minutes__gte=1), name="idle_policy_minutes"),
            models.CheckConstraint(condition=Q(action__in=["release", "demote", "notify"]), name="idle_policy_action_valid"),
        ]  # fmt: skip

    def __str__(self):
        return f"idle policy of {self.tenant.slug if self.tenant_id else 'the platform'}"
