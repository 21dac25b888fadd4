from datetime import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ocenter.api import ModelSerializer, Serializer
from pools.models import MAX_ARRAY_MEMBERS, MAX_SLICE_MEMORY_MIB, Accelerator, Allocation, AllocationEvent, Pool, Slice
from pools.selectors import allocations_activity, estimated_starts, queue_positions
from tenants.access import Access
from tenants.selectors import project_for


class PoolSerializer(ModelSerializer):
    gpu_count = serializers.IntegerField(read_only=True)
    memory_mib = serializers.IntegerField(read_only=True)
    gpu_models = serializers.SerializerMethodField()

    class Meta:
        model = Pool
        fields = [
            "id",
            "name",
            "region",
            "status",
            "status_detail",
            "last_seen_at",
            "backend",
            "agent_version",
            "inventory_generation",
            "gpu_count",
            "memory_mib",
            "gpu_models",
        ]

    def get_gpu_models(self, pool) -> list[dict]:
        return [{"model": model, "count": count} for model, count in pool.gpu_models]


class StaffPoolSerializer(PoolSerializer):
    """What staff see besides: where the agent is and which token it takes."""

    class Meta(PoolSerializer.Meta):
        fields = [*PoolSerializer.Meta.fields, "agent_url", "token_prefix", "last_sync_at", "created_at"]


class AcceleratorSerializer(ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True)
    node = serializers.CharField(source="node.name", read_only=True)

    class Meta:
        model = Accelerator
        fields = ["uuid", "pool", "node", "index", "vendor", "model", "memory_mib", "health", "templates", "first_seen_at", "gone_at"]


class SliceSerializer(ModelSerializer):
    pool = serializers.CharField(source="pool.name", read_only=True)
    gpu_uuid = serializers.CharField(source="accelerator.uuid", read_only=True)
    model = serializers.CharField(source="accelerator.model", read_only=True)

    class Meta:
        model = Slice
        fields = ["id", "index", "pool", "gpu_uuid", "model", "compute_units", "memory_mib", "active", "env", "launch"]

    def to_representation(self, s):
        # Written out (the fields above stay for the schema, and a test holds the two equal): an allocation's
        # answer is on the hot path, and building a ModelSerializer's fields costs more than the rest of it.
        return {"id": str(s.id), "index": s.index, "pool": s.pool.name, "gpu_uuid": s.accelerator.uuid, "model": s.accelerator.model,
                "compute_units": s.compute_units, "memory_mib": s.memory_mib, "active": s.active, "env": s.env,
                "launch": s.launch}  # fmt: skip


class AllocationEventSerializer(ModelSerializer):
    class Meta:
        model = AllocationEvent
        fields = ["at", "from_state", "to_state", "actor_label", "reason"]


class AllocationPointSerializer(Serializer):
    at = serializers.DateTimeField()
    utilization = serializers.IntegerField(allow_null=True, help_text="its slices' mean use of their own compute, percent")
    busiest = serializers.IntegerField(allow_null=True, help_text="the busiest slice's use of its own compute, percent")
    memory_mib = serializers.IntegerField(allow_null=True)
    processes = serializers.IntegerField(allow_null=True)


class IdleSerializer(Serializer):
    since = serializers.DateTimeField(help_text="since when its slices showed no work")
    flagged_at = serializers.DateTimeField()
    acted_at = serializers.DateTimeField(allow_null=True, help_text="when the idle policy acted on it (realtime work: warned)")
    spent = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True, help_text="what it cost while idle")


class AllocationSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    pool = serializers.CharField(source="pool_name", read_only=True)
    slices = SliceSerializer(many=True, read_only=True)
    array = serializers.UUIDField(source="array_id", read_only=True, allow_null=True, help_text="the job array it is a member of")
    queue_position = serializers.SerializerMethodField()
    estimated_start = serializers.SerializerMethodField()
    unreachable_pools = serializers.SerializerMethodField(help_text="pools holding its slices that oCenter cannot reach now")
    usage = serializers.SerializerMethodField(help_text="its last minute: utilization, the busiest slice, memory used, processes")
    idle = serializers.SerializerMethodField(help_text="set while it is flagged idle: since when, and what it spent idle")

    class Meta:
        model = Allocation
        fields = [
            "id",
            "tenant",
            "project",
            "state",
            "reason",
            "priority",
            "policy",
            "count",
            "compute_units",
            "memory_mib",
            "template",
            "vendor",
            "accelerator_model",
            "pool",
            "region",
            "lease_seconds",
            "labels",
            "requeue_on_preempt",
            "borrowed",
            "preempted_by",
            "requeued_from",
            "array",
            "array_index",
            "queue_position",
            "estimated_start",
            "unreachable_pools",
            "usage",
            "idle",
            "slices",
            "created_at",
            "started_at",
            "expires_at",
            "ended_at",
        ]

    def to_representation(self, a):
        # Written out, as SliceSerializer's is (and held equal to the generic one by a test).
        dt = _DATETIME.to_representation
        return {
            "id": str(a.id), "tenant": a.tenant.slug, "project": str(a.project_id), "state": a.state, "reason": a.reason,
            "priority": a.priority, "policy": a.policy, "count": a.count, "compute_units": a.compute_units, "memory_mib": a.memory_mib,
            "template": a.template,
            "vendor": a.vendor, "accelerator_model": a.accelerator_model, "pool": a.pool_name, "region": a.region,
            "lease_seconds": a.lease_seconds, "labels": a.labels, "requeue_on_preempt": a.requeue_on_preempt, "borrowed": a.borrowed,
            "preempted_by": _id(a.preempted_by_id), "requeued_from": _id(a.requeued_from_id),
            "array": _id(a.array_id), "array_index": a.array_index,
            "queue_position": self.get_queue_position(a), "estimated_start": self.get_estimated_start(a),
            "unreachable_pools": self.get_unreachable_pools(a), "usage": self.get_usage(a), "idle": self.get_idle(a),
            "slices": [_SLICE.to_representation(s) for s in a.slices.all()],
            "created_at": dt(a.created_at), "started_at": dt(a.started_at), "expires_at": dt(a.expires_at), "ended_at": dt(a.ended_at),
        }  # fmt: skip

    def get_queue_position(self, allocation) -> int | None:
        if allocation.state != Allocation.State.QUEUED:
            return None
        # Worked out once per response, for what waits in it.
        if "positions" not in self.context:
            parent = self.parent.instance if self.parent is not None else None
            waiting = [a.id for a in (parent if parent is not None else [allocation]) if a.state == Allocation.State.QUEUED]
            self.context["positions"] = queue_positions(waiting)
        return self.context["positions"].get(allocation.id)

    def _activity(self, allocation) -> dict:
        # Worked out once per response, for every allocation in it.
        if "activity" not in self.context:
            parent = self.parent.instance if self.parent is not None else None
            self.context["activity"] = allocations_activity(parent if parent is not None else [allocation])
        return self.context["activity"].get(allocation.id) or allocations_activity([allocation])[allocation.id]

    @extend_schema_field(AllocationPointSerializer(allow_null=True))
    def get_usage(self, allocation):
        point = self._activity(allocation)["usage"]
        return AllocationPointSerializer(point).data if point else None

    @extend_schema_field(IdleSerializer(allow_null=True))
    def get_idle(self, allocation):
        idle = self._activity(allocation)["idle"]
        return IdleSerializer(idle).data if idle else None

    def get_unreachable_pools(self, allocation) -> list[str]:
        return sorted({s.pool.name for s in allocation.slices.all() if s.active and s.pool.status == Pool.Status.UNREACHABLE})

    def get_estimated_start(self, allocation) -> datetime | None:
        if self.get_queue_position(allocation) is None:
            return None
        # Worked out once per response, for every queued allocation in it.
        if "starts" not in self.context:
            parent = self.parent.instance if self.parent is not None else None
            self.context["starts"] = estimated_starts(parent if parent is not None else [allocation], self.context["positions"])
        if allocation.id not in self.context["starts"]:
            self.context["starts"].update(estimated_starts([allocation], self.context["positions"]))
        return self.context["starts"][allocation.id]


_DATETIME = serializers.DateTimeField()
_SLICE = SliceSerializer()


def _id(value) -> str | None:
    return None if value is None else str(value)


class AllocationRequestSerializer(Serializer):
    project = serializers.UUIDField(help_text="the project it is for (and billed to)")
    count = serializers.IntegerField(min_value=1, max_value=64, default=1, help_text="slices, each on its own GPU")
    compute_units = serializers.IntegerField(min_value=1, max_value=100, help_text="per slice; 100 = one whole GPU")
    memory_mib = serializers.IntegerField(min_value=1, max_value=MAX_SLICE_MEMORY_MIB, help_text="GPU memory per slice")
    priority = serializers.ChoiceField(choices=Allocation.Priority.choices, default=Allocation.Priority.OFFLINE)
    policy = serializers.ChoiceField(choices=Allocation.Policy.choices, default=Allocation.Policy.BINPACK)
    vendor = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    accelerator_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    pool = serializers.CharField(required=False, allow_blank=True, default="", max_length=63)
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    lease_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=60, max_value=90 * 86400, default=None)
    labels = serializers.DictField(child=serializers.CharField(max_length=255), required=False, default=dict)
    requeue_on_preempt = serializers.BooleanField(default=False)

    def validate_project(self, project_id):
        project = project_for(Access.of(self.context["request"]), project_id)
        if project is None:  # not there, or in a tenant this access does not reach: the same answer
            raise serializers.ValidationError(f'Invalid pk "{project_id}" - object does not exist.')
        return project

    def validate_labels(self, labels):
        if len(labels) > 32 or any(len(k) > 63 for k in labels):
            raise serializers.ValidationError("at most 32 labels, keys of at most 63 characters.")
        return labels


class AllocationArrayRequestSerializer(AllocationRequestSerializer):
    members = serializers.IntegerField(min_value=1, max_value=MAX_ARRAY_MEMBERS, help_text="independent allocations, each of the rest")


class AllocationArraySerializer(Serializer):
    array = serializers.UUIDField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="members by state")
    members = AllocationSerializer(many=True, help_text="in order; a member that waits says why (reason)")


class SeriesQuerySerializer(Serializer):
    """``?since=`` (an ISO 8601 time; default: an hour ago) and ``?resolution=`` (minute or hour; default: minutes for a day)."""

    since = serializers.DateTimeField(required=False)
    resolution = serializers.ChoiceField(choices=["minute", "hour"], required=False)


class AllocationUsageSerializer(Serializer):
    allocation = serializers.UUIDField()
    resolution = serializers.CharField()
    points = AllocationPointSerializer(many=True)


class PoolPointSerializer(Serializer):
    at = serializers.DateTimeField()
    utilization = serializers.FloatField(allow_null=True, help_text="its GPUs' mean utilization, percent")
    memory_mib = serializers.IntegerField(help_text="memory used on its GPUs together")
    gpus = serializers.IntegerField(help_text="GPUs that reported")


class PoolUtilizationSerializer(Serializer):
    pool = serializers.UUIDField()
    resolution = serializers.CharField()
    points = PoolPointSerializer(many=True)
